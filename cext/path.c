/*
 * path.c - the data path's per-packet loop for the plain case: IP and VJ
 * between the TUN device and HDLC frames, no NAT; CCP off, or Deflate
 * while it sends and receives packets as they are (the loop keeps what its
 * history needs: upp_path_hist).
 *
 * The rest of the core is sans-I/O; these two functions are not: they
 * read and write a file descriptor the caller owns (the TUN device), so
 * that a batch of packets costs one call from Python instead of a Python
 * loop doing a system call and a few objects per packet.  Everything else
 * they do is the core's own functions (upp_vj_*, upp_encode, and on a TUN
 * with offloads upp_tso_* for reads and a virtio_net_hdr for writes).  The Python
 * twins are userppp/ref/path.py; userppp/io/network.py uses these only
 * when no stage needs Python (no NAT, no capture, CCP off or Deflate
 * sending and receiving packets as they are).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "upp.h"

enum {
    PROTO_IP = 0x21,
    PROTO_VJC_COMP = 0x2D,
    PROTO_VJC_UNCOMP = 0x2F,
    PROTO_COMP = 0xFD
};

/* write errors after which the fd is no use: closed, or the device
 * deleted (as TunDevice.write_batch has them; EIO, a TUN that is down, is
 * only a packet refused) */
static int fd_gone(int err)
{
    return err == EBADF || err == EBADFD;
}

/* one packet to fd (behind a virtio_net_hdr of zeros when vnet); 0, or -1
 * when the fd is gone (st->fd_errno set) */
static int put_packet(int fd, int vnet, const uint8_t *pkt, size_t len, upp_path_stats *st)
{
    static const uint8_t no_offload[UPP_VNET_HDR];
    struct iovec iov[2];
    ssize_t n;

    st->packets++;
    st->bytes += len;
    iov[0].iov_base = (void *)no_offload;
    iov[0].iov_len = sizeof no_offload;
    iov[1].iov_base = (void *)pkt;
    iov[1].iov_len = len;
    do
        n = vnet ? writev(fd, iov, 2) : write(fd, pkt, len);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (fd_gone(errno)) {
            st->fd_errno = errno;
            return -1;
        }
        st->fd_errors++;
        return 0;
    }
    st->fd_packets++;
    st->fd_bytes += len;
    return 0;
}

/* one frame's protocol (one octet) and information field as a stored
 * block (RFC 1951 3.2.4: BTYPE 00, LEN, NLEN), appended to h; 0 when h
 * has no room (or the frame needs more than one block) */
static int learn_frame(upp_path_hist *h, unsigned proto, const uint8_t *payload, size_t len)
{
    size_t n = len + 1;
    uint8_t *p;

    if (n > 0xFFFF || (size_t)(h->cap - h->len) < n + 5)
        return 0;
    p = h->buf + h->len;
    p[0] = 0;
    p[1] = (uint8_t)(n & 0xFF);
    p[2] = (uint8_t)(n >> 8);
    p[3] = (uint8_t)(~n & 0xFF);
    p[4] = (uint8_t)((~n >> 8) & 0xFF);
    p[5] = (uint8_t)proto;
    memcpy(p + 6, payload, len);
    h->len += (uint32_t)(n + 5);
    h->count++;
    return 1;
}

size_t upp_deliver_frames(upp_vj_decomp *vj, uint32_t mru, int fd, int vnet, const uint8_t *out,
                          const uint32_t *rec, size_t nrec, uint8_t *scratch,
                          size_t scratch_cap, upp_path_hist *hist, upp_path_stats *st)
{
    size_t i;

    for (i = 0; i < nrec; i++) {
        unsigned proto = rec[3 * i];
        const uint8_t *payload = out + rec[3 * i + 1];
        size_t len = rec[3 * i + 2] - rec[3 * i + 1];
        ptrdiff_t n;

        if (proto != PROTO_IP && proto != PROTO_VJC_COMP && proto != PROTO_VJC_UNCOMP
            && proto != PROTO_COMP)
            break;                      /* the Link's: stop here */
        if (hist != NULL) {
            if (proto == PROTO_COMP)
                break;                  /* the decompressor's */
            if (hist->learn && !learn_frame(hist, proto, payload, len))
                break;                  /* no room: the caller takes it */
        }
        st->frames++;
        st->wire_bytes += len;
        if (proto == PROTO_COMP) {
            st->ccp_not_up++;
            continue;
        }
        if (proto == PROTO_IP) {
            if (vj != NULL)
                vj->ip++;               /* as upp_vj_uncompress_many counts it */
            if (len == 0) {
                st->not_ip++;           /* an empty frame carries no packet */
                continue;
            }
        } else if (vj == NULL) {
            st->vj_not_negotiated++;
            continue;
        } else {
            n = upp_vj_uncompress(vj, proto, payload, len, scratch, scratch_cap);
            if (n <= 0) {
                st->vj_error++;
                continue;
            }
            payload = scratch;
            len = (size_t)n;
        }
        if (len > mru) {
            st->too_big++;
            continue;
        }
        if (put_packet(fd, vnet, payload, len, st) < 0)
            return i + 1;
    }
    return i;
}

/* one read of fd into buf; its length, or -1 to end the batch (EAGAIN or 0
 * counted in fd_empty, another error in fd_errno) */
static ssize_t read_packet(int fd, uint8_t *buf, size_t cap, upp_path_stats *st)
{
    ssize_t n;

    do
        n = read(fd, buf, cap);
    while (n < 0 && errno == EINTR);
    if (n > 0)
        return n;
    if (n == 0 || errno == EAGAIN || errno == EWOULDBLOCK)
        st->fd_empty++;         /* nothing more (a TUN never gives 0) */
    else
        st->fd_errno = errno;
    return -1;
}

ptrdiff_t upp_tun_to_frames(int fd, upp_tso *tso, size_t max_packets, uint32_t mtu,
                            upp_vj_comp *vj, const upp_enc *e, unsigned flags,
                            uint8_t *scratch, size_t scratch_cap, uint8_t *out, size_t cap,
                            upp_path_hist *hist, upp_path_stats *st)
{
    size_t used = 0, taken = 0, frame_room = upp_enc_bound(mtu);
    size_t hist_room = (size_t)mtu + 1;
    /* VJ output is never longer than its input: one more mtu of room */
    uint8_t *vjout = scratch_cap >= 65536 + (size_t)mtu ? scratch + 65536 : NULL;

    if (scratch_cap < 65536 || (vj != NULL && vjout == NULL) || cap < frame_room
        || (hist != NULL && hist->cap < hist->len + hist_room))
        return UPP_ERR_ARG;        /* no room for one frame: the caller frames it */
    while (taken < max_packets && cap - used >= frame_room
           && (hist == NULL || hist->cap - hist->len >= hist_room)) {
        const uint8_t *payload = scratch;
        size_t len;
        unsigned proto = PROTO_IP;
        ptrdiff_t r;

        if (tso == NULL) {
            r = read_packet(fd, scratch, 65536, st);
            if (r < 0)
                break;
        } else {
            /* what is left of the last read (a TSO one) first */
            if (tso->left == 0) {
                r = read_packet(fd, tso->buf, UPP_TSO_READ, st);
                if (r < 0)
                    break;
                if (upp_tso_take(tso, (size_t)r) == 0) {
                    taken++;
                    st->fd_packets++;
                    st->fd_bytes += (size_t)r;
                    st->not_ip++;       /* its header or packet is malformed */
                    continue;
                }
            }
            r = upp_tso_next(tso, scratch, 65536);
            if (r < 0)
                return r;
        }
        taken++;
        len = (size_t)r;
        st->fd_packets++;
        st->fd_bytes += len;
        if (len > mtu) {
            st->too_big++;
            continue;
        }
        if (len == 0 || scratch[0] >> 4 != 4) {
            st->not_ip++;
            continue;
        }
        st->packets++;
        st->bytes += len;
        if (vj != NULL) {
            r = upp_vj_compress(vj, scratch, len, vjout, mtu, &proto);
            if (r < 0)
                return r;
            payload = vjout;
            len = (size_t)r;
        }
        r = upp_encode(e, proto, payload, len, flags, out + used, cap - used);
        if (r < 0)
            return r;
        flags &= ~(unsigned)UPP_ENC_OPEN_FLAG;   /* later frames share the flag */
        used += (size_t)r;
        if (hist != NULL) {
            hist->buf[hist->len] = (uint8_t)proto;
            memcpy(hist->buf + hist->len + 1, payload, len);
            hist->len += (uint32_t)(len + 1);
            hist->count++;
        }
        st->frames++;
        st->wire_bytes += len;
    }
    return (ptrdiff_t)used;
}
