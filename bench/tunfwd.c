/*
 * tunfwd: the least a userspace point-to-point link can do, for
 * bench_datapath's rig floor (issue 10).  Not part of userppp.
 *
 *     tunfwd TUN-NAME TTY-PATH
 *
 * Creates the TUN device (IFF_TUN | IFF_NO_PI), prints "ready", then moves
 * IP packets between it and the tty: each packet goes on the line as a
 * 2-octet length and the packet, with no FCS, escaping, compression or
 * negotiation.  Batches as userppp does: the TUN is read until it is empty
 * (or 31 KiB are waiting) and the batch goes to the line in one write; what
 * the tty does not take stays queued, and the TUN is not read while it does.
 * A line read takes what the tty has (up to 64 KiB) and writes each complete
 * packet into the TUN.  Any PPP implementation does at least this much work
 * per packet, so its goodput over the same ptys is bounded by this one's.
 *
 * Stops on SIGTERM or a hangup of the tty.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#define MAX_PACKET 65535
#define BATCH 31744          /* stop reading the TUN once this much waits */
#define OUT_CAP (BATCH + MAX_PACKET + 2)
#define IN_CAP (65536 + MAX_PACKET + 2)

static volatile sig_atomic_t stop;

static void on_term(int sig) { (void)sig; stop = 1; }

static int open_tun(const char *name)
{
    struct ifreq ifr;
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK);
    if (fd < 0)
        return -1;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int main(int argc, char **argv)
{
    static uint8_t out[OUT_CAP], in[IN_CAP];
    size_t out_len = 0, out_pos = 0, in_len = 0;
    unsigned long long packets_out = 0, packets_in = 0;
    struct termios tio;
    struct sigaction sa;
    int tun, line;

    if (argc != 3) {
        fprintf(stderr, "usage: tunfwd TUN-NAME TTY-PATH\n");
        return 2;
    }
    tun = open_tun(argv[1]);
    if (tun < 0) {
        perror("tunfwd: TUN");
        return 1;
    }
    line = open(argv[2], O_RDWR | O_NOCTTY | O_NONBLOCK);
    if (line < 0 || tcgetattr(line, &tio) < 0) {
        perror("tunfwd: tty");
        return 1;
    }
    cfmakeraw(&tio);
    tcsetattr(line, TCSANOW, &tio);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    printf("ready\n");
    fflush(stdout);

    while (!stop) {
        struct pollfd fds[2] = {
            {.fd = line, .events = POLLIN | (out_pos < out_len ? POLLOUT : 0)},
            {.fd = tun, .events = out_pos < out_len ? 0 : POLLIN},
        };
        if (poll(fds, 2, 500) < 0) {
            if (errno == EINTR)
                continue;
            perror("tunfwd: poll");
            return 1;
        }
        if (fds[0].revents & (POLLHUP | POLLERR))
            break;
        if (fds[1].revents & POLLIN) {
            /* a batch from the TUN, one write to the line */
            out_len = out_pos = 0;
            while (out_len < BATCH) {
                ssize_t n = read(tun, out + out_len + 2, MAX_PACKET);
                if (n <= 0)
                    break;
                out[out_len] = (uint8_t)(n >> 8);
                out[out_len + 1] = (uint8_t)n;
                out_len += 2 + (size_t)n;
                packets_out++;
            }
        }
        if (out_pos < out_len) {
            ssize_t n = write(line, out + out_pos, out_len - out_pos);
            if (n > 0)
                out_pos += (size_t)n;
            else if (n < 0 && errno != EAGAIN && errno != EINTR)
                break;
        }
        if (fds[0].revents & POLLIN) {
            ssize_t n = read(line, in + in_len, 65536);
            size_t pos = 0;
            if (n <= 0) {
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                    continue;
                break;
            }
            in_len += (size_t)n;
            while (in_len - pos >= 2) {
                size_t size = (size_t)in[pos] << 8 | in[pos + 1];
                if (in_len - pos - 2 < size)
                    break;
                if (write(tun, in + pos + 2, size) == (ssize_t)size)
                    packets_in++;
                pos += 2 + size;
            }
            memmove(in, in + pos, in_len - pos);
            in_len -= pos;
        }
    }
    fprintf(stderr, "tunfwd: %llu packets to the line, %llu to the TUN\n",
            packets_out, packets_in);
    return 0;
}
