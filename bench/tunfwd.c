/*
 * tunfwd: the least a userspace point-to-point link can do, for
 * bench_datapath's rig floor (issue 10).  Not part of userppp.
 *
 *     tunfwd TUN-NAME TTY-PATH [--gso | --gro | --tso]
 *
 * Creates the TUN device (IFF_TUN | IFF_NO_PI), prints "ready", then moves
 * IP packets between it and the tty: each packet goes on the line as a
 * 2-octet length and the packet, with no FCS, escaping, compression or
 * negotiation.  Batches as userppp does: the TUN is read until it is empty
 * (or 31 KiB are waiting) and the batch goes to the line in one write; what
 * the tty does not take stays queued, and the TUN is not read while it does.
 * A line read takes what the tty has (up to 64 KiB) and writes each complete
 * packet into the TUN.  Any PPP implementation that reads and writes its
 * TUN a packet at a time does at least this much work per packet, so its
 * goodput over the same ptys is bounded by this one's.
 *
 * With --gso the TUN is opened with IFF_VNET_HDR and TSO and checksum
 * offloads, so the kernel hands over TCP segments of up to 64 KiB with a
 * virtio_net_hdr in front, and each goes on the line as it is (a 3-octet
 * length) to be written into the other TUN as one GSO packet: the kernels
 * at both ends see one packet where a link of MTU-sized frames carries
 * forty.  That is no PPP (frames are bigger than any MRU); it bounds what
 * TUN offloads (segmenting in userspace on one side, coalescing on the
 * other) could give a link on these ptys.
 *
 * With --gro the line carries MTU-sized packets as without options, but the
 * receiving end coalesces the TCP segments of one line read that continue
 * each other (same addresses, ports, ACK, window and options; flags ACK and
 * PSH only; sizes equal but for the last) into one GSO write, the TCP
 * checksum left to the kernel as CHECKSUM_PARTIAL (the segments' own
 * checksums are not checked: a bench tool between two namespaces on a
 * lossless pty).  That is the receive half of TUN offloads alone.
 *
 * With --tso both halves, as a PPP link could do them: the TUNs have TSO
 * and checksum offloads as with --gso, but each segment of up to 64 KiB a
 * read gives is cut into MTU-sized packets (headers copied, lengths, IDs,
 * sequence numbers and FIN/PSH/CWR set per packet, both checksums
 * computed) that go on the line as without options, and the receiving end
 * coalesces them again as with --gro.
 *
 * Stops on SIGTERM or a hangup of the tty.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <stddef.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#define MAX_PACKET (65535 + sizeof(struct virtio_net_hdr))
#define BATCH 31744          /* stop reading the TUN once this much waits */
#define OUT_CAP (BATCH + 2 * MAX_PACKET)
#define IN_CAP (65536 + MAX_PACKET + 3)

static volatile sig_atomic_t stop;

static void on_term(int sig) { (void)sig; stop = 1; }

static int open_tun(const char *name, int vnet, int gso)
{
    struct ifreq ifr;
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK);
    if (fd < 0)
        return -1;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0);
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        close(fd);
        return -1;
    }
    if (gso && ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}


/* --gro: the TCP segment being built, its virtio_net_hdr in front */
#define VNET sizeof(struct virtio_net_hdr)
static struct {
    uint8_t buf[VNET + 65535];
    size_t len;                 /* 0: nothing pending */
    size_t segments;
    size_t headers;             /* IP and TCP header octets */
    size_t mss;                 /* the first segment's payload */
    uint32_t next_seq;
    unsigned long long writes;  /* writes of more than one segment */
    unsigned long long coalesced;   /* the segments in them */
    unsigned long long failed;      /* writes the TUN refused */
} gro;

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t sum16(uint32_t sum, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        sum += (uint32_t)p[i] << 8 | p[i + 1];
    if (n & 1)
        sum += (uint32_t)p[n - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return sum;
}

static void gro_flush(int tun)
{
    struct virtio_net_hdr *h = (struct virtio_net_hdr *)gro.buf;
    uint8_t *ip = gro.buf + VNET;
    size_t total = gro.len - VNET;

    if (!gro.len)
        return;
    memset(h, 0, VNET);
    if (gro.segments > 1) {
        uint16_t sum;
        ip[2] = (uint8_t)(total >> 8);
        ip[3] = (uint8_t)total;
        ip[10] = ip[11] = 0;
        sum = (uint16_t)~sum16(0, ip, 20);
        ip[10] = (uint8_t)(sum >> 8);
        ip[11] = (uint8_t)sum;
        /* CHECKSUM_PARTIAL: the TCP checksum field holds the pseudo-header's sum */
        sum = (uint16_t)sum16(6 + (uint32_t)(total - 20), ip + 12, 8);
        ip[20 + 16] = (uint8_t)(sum >> 8);
        ip[20 + 17] = (uint8_t)sum;
        h->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
        h->gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
        h->hdr_len = (uint16_t)gro.headers;
        h->gso_size = (uint16_t)gro.mss;
        h->csum_start = 20;
        h->csum_offset = 16;
    }
    if (write(tun, gro.buf, gro.len) != (ssize_t)gro.len) {
        gro.failed++;
    } else if (gro.segments > 1) {
        gro.writes++;
        gro.coalesced += gro.segments;
    }
    gro.len = 0;
}

/* Whether p continues the pending segment: the same IP header but for the
 * length, ID and checksum (IDs are not checked); the same ports, ACK, flags,
 * window and options;
 * the next sequence number; no more payload than the first; the pending one
 * without a PSH (nothing follows a PSH). */
static int gro_continues(const uint8_t *p, size_t headers, size_t payload)
{
    const uint8_t *q = gro.buf + VNET;
    return gro.len && headers == gro.headers && payload <= gro.mss
        && gro.len + payload <= sizeof gro.buf
        && q[1] == p[1] && q[6] == p[6] && memcmp(q + 8, p + 8, 2) == 0
        && memcmp(q + 12, p + 12, 8) == 0
        && memcmp(q + 20, p + 20, 4) == 0 && get32(p + 24) == gro.next_seq
        && memcmp(q + 28, p + 28, 5) == 0 && q[33] == 0x10 && memcmp(q + 34, p + 34, 2) == 0
        && memcmp(q + 40, p + 40, headers - 40) == 0;
}

/* One packet for the TUN (a TUN with IFF_VNET_HDR). */
static void gro_packet(int tun, const uint8_t *p, size_t n)
{
    size_t headers = 0, payload = 0;
    /* IPv4, no options, not a fragment, TCP; flags ACK, maybe PSH */
    int tcp = n >= 40 && p[0] == 0x45 && (p[6] & 0xbf) == 0 && p[7] == 0 && p[9] == 6
        && ((size_t)p[2] << 8 | p[3]) == n && (p[33] & ~0x08) == 0x10;
    if (tcp) {
        headers = 20 + (size_t)(p[32] >> 4) * 4;
        tcp = headers >= 40 && headers < n;
        payload = n - headers;
    }
    if (tcp && gro_continues(p, headers, payload)) {
        memcpy(gro.buf + gro.len, p + headers, payload);
        gro.len += payload;
        gro.segments++;
        gro.next_seq += (uint32_t)payload;
        gro.buf[VNET + 33] |= p[33];        /* a PSH on the last one */
        if (payload < gro.mss || (p[33] & 0x08))
            gro_flush(tun);
        return;
    }
    gro_flush(tun);
    memcpy(gro.buf + VNET, p, n);
    gro.len = VNET + n;
    gro.segments = 1;
    if (!tcp) {
        gro_flush(tun);
        return;
    }
    gro.headers = headers;
    gro.mss = payload;
    gro.next_seq = get32(p + 24) + (uint32_t)payload;
}

static void put_length(uint8_t *p, size_t octets, size_t n);

/* --tso: a TUN read (virtio_net_hdr, then a packet of up to 64 KiB) as
 * MTU-sized packets, each behind a 2-octet length, at out; returns the
 * octets written there (0 for a packet it cannot take: dropped). */
static size_t tso_split(const uint8_t *in, size_t n, uint8_t *out)
{
    const struct virtio_net_hdr *h = (const struct virtio_net_hdr *)in;
    const uint8_t *p = in + VNET;
    size_t len = n - VNET, done = 0;

    if (n < VNET + 20)
        return 0;
    if ((h->gso_type & ~VIRTIO_NET_HDR_GSO_ECN) != VIRTIO_NET_HDR_GSO_TCPV4) {
        /* one packet; with NEEDS_CSUM its checksum field holds the
         * pseudo-header's sum, the rest is ours to add */
        if (h->gso_type != VIRTIO_NET_HDR_GSO_NONE)
            return 0;
        memcpy(out + 2, p, len);
        if (h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
            size_t start = h->csum_start, at = start + h->csum_offset;
            uint16_t sum;
            if (at + 2 > len)
                return 0;
            sum = (uint16_t)~sum16(0, out + 2 + start, len - start);
            if (p[9] == 17 && sum == 0)
                sum = 0xffff;
            out[2 + at] = (uint8_t)(sum >> 8);
            out[2 + at + 1] = (uint8_t)sum;
        }
        put_length(out, 2, len);
        return 2 + len;
    }
    size_t ihl = (size_t)(p[0] & 15) * 4, headers, mss = h->gso_size;
    if (len < ihl + 20 || mss == 0)
        return 0;
    headers = ihl + (size_t)(p[ihl + 12] >> 4) * 4;
    if (headers > len)
        return 0;
    uint32_t seq = get32(p + ihl + 4);
    uint16_t id = (uint16_t)(p[4] << 8 | p[5]);
    for (size_t at = headers, i = 0; at < len; at += mss, i++) {
        size_t chunk = len - at < mss ? len - at : mss, total = headers + chunk;
        uint8_t *q = out + done + 2;
        uint16_t sum;
        memcpy(q, p, headers);
        memcpy(q + headers, p + at, chunk);
        q[2] = (uint8_t)(total >> 8);
        q[3] = (uint8_t)total;
        q[4] = (uint8_t)((id + i) >> 8);
        q[5] = (uint8_t)(id + i);
        q[10] = q[11] = 0;
        sum = (uint16_t)~sum16(0, q, ihl);
        q[10] = (uint8_t)(sum >> 8);
        q[11] = (uint8_t)sum;
        uint32_t s = seq + (uint32_t)(at - headers);
        q[ihl + 4] = (uint8_t)(s >> 24);
        q[ihl + 5] = (uint8_t)(s >> 16);
        q[ihl + 6] = (uint8_t)(s >> 8);
        q[ihl + 7] = (uint8_t)s;
        if (at + chunk < len)
            q[ihl + 13] &= (uint8_t)~0x09;      /* FIN and PSH: the last one only */
        if (i)
            q[ihl + 13] &= (uint8_t)~0x80;      /* CWR: the first one only */
        q[ihl + 16] = q[ihl + 17] = 0;
        sum = (uint16_t)~sum16(sum16(6 + (uint32_t)(total - ihl), q + 12, 8), q + ihl,
                               total - ihl);
        q[ihl + 16] = (uint8_t)(sum >> 8);
        q[ihl + 17] = (uint8_t)sum;
        put_length(out + done, 2, total);
        done += 2 + total;
    }
    return done;
}

static void put_length(uint8_t *p, size_t octets, size_t n)
{
    for (size_t i = 0; i < octets; i++)
        p[i] = (uint8_t)(n >> 8 * (octets - 1 - i));
}

static size_t get_length(const uint8_t *p, size_t octets)
{
    size_t n = 0;
    for (size_t i = 0; i < octets; i++)
        n = n << 8 | p[i];
    return n;
}

int main(int argc, char **argv)
{
    static uint8_t out[OUT_CAP], in[IN_CAP];
    size_t out_len = 0, out_pos = 0, in_len = 0, len_size;
    unsigned long long packets_out = 0, packets_in = 0;
    struct termios tio;
    struct sigaction sa;
    static uint8_t tso_in[MAX_PACKET];
    int tun, line, gso, coalesce, split;

    gso = argc == 4 && strcmp(argv[3], "--gso") == 0;
    split = argc == 4 && strcmp(argv[3], "--tso") == 0;
    coalesce = split || (argc == 4 && strcmp(argv[3], "--gro") == 0);
    if (argc != 3 && !gso && !coalesce) {
        fprintf(stderr, "usage: tunfwd TUN-NAME TTY-PATH [--gso | --gro | --tso]\n");
        return 2;
    }
    len_size = gso ? 3 : 2;     /* a GSO packet and its header pass 65535 */
    tun = open_tun(argv[1], gso || coalesce, gso || split);
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
            while (split && out_len < BATCH) {
                ssize_t n = read(tun, tso_in, MAX_PACKET);
                if (n <= 0)
                    break;
                out_len += tso_split(tso_in, (size_t)n, out + out_len);
                packets_out++;
            }
            while (!split && out_len < BATCH) {
                ssize_t n = read(tun, out + out_len + len_size, MAX_PACKET);
                if (n <= 0)
                    break;
                if (coalesce) {     /* the header (all zero: no offloads asked) off */
                    n -= (ssize_t)VNET;
                    memmove(out + out_len + len_size, out + out_len + len_size + VNET,
                            (size_t)n);
                }
                put_length(out + out_len, len_size, (size_t)n);
                out_len += len_size + (size_t)n;
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
            while (in_len - pos >= len_size) {
                size_t size = get_length(in + pos, len_size);
                if (size > MAX_PACKET) {
                    fprintf(stderr, "tunfwd: a length of %zu on the line: out of step\n", size);
                    stop = 1;
                    break;
                }
                if (in_len - pos - len_size < size)
                    break;
                if (coalesce) {
                    gro_packet(tun, in + pos + len_size, size);
                    packets_in++;
                } else if (write(tun, in + pos + len_size, size) == (ssize_t)size)
                    packets_in++;
                pos += len_size + size;
            }
            if (coalesce)
                gro_flush(tun);     /* what one line read gave */
            memmove(in, in + pos, in_len - pos);
            in_len -= pos;
        }
    }
    fprintf(stderr, "tunfwd: %llu packets to the line, %llu off it; %llu TUN writes of "
            "%llu coalesced segments, %llu refused\n", packets_out, packets_in, gro.writes,
            gro.coalesced, gro.failed);
    return 0;
}
