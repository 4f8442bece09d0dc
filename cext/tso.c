/*
 * tso.c - the segmenter of a TUN with offloads: one read (virtio_net_hdr and
 * a packet, perhaps a TCP segment of up to 64 KiB) as the MTU-sized packets
 * a NIC would have put on the wire (see upp.h).  The Python twin is
 * userppp/ref/tso.py.
 *
 * Letting the kernel hand over 64 KiB at a time saves it the trip through
 * its TCP/IP output path for every packet, and the data path a read() for
 * every packet; the line still carries packets of the link's MTU.
 */
#include <string.h>

#include "upp.h"

enum {
    VNET_F_NEEDS_CSUM = 1,
    VNET_GSO_NONE = 0,
    VNET_GSO_TCPV4 = 1,
    VNET_GSO_ECN = 0x80,
    IPPROTO_TCP_ = 6,
    TCP_FIN = 0x01,
    TCP_PSH = 0x08,
    TCP_CWR = 0x80
};

/* a virtio_net_hdr field: the kernel's TUN uses the host's byte order */
static uint16_t vnet16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static uint16_t ipv4_header_checksum(uint8_t *ip, size_t ihl)
{
    ip[10] = ip[11] = 0;
    return upp_inet_csum(ip, ihl);
}

/* the TCP checksum of segment ip (ihl octets of IP header, then TCP) */
static uint16_t tcp_checksum(const uint8_t *ip, size_t ihl, size_t total)
{
    uint32_t pseudo = IPPROTO_TCP_ + (uint32_t)(total - ihl);
    uint16_t sum;

    pseudo = (pseudo & 0xFFFF) + (pseudo >> 16);
    sum = upp_csum_sum(ip + 12, 8, (uint16_t)pseudo);
    return (uint16_t)~upp_csum_sum(ip + ihl, total - ihl, sum);
}

static size_t refuse(upp_tso *t)
{
    t->refused++;
    return 0;
}

size_t upp_tso_take(upp_tso *t, size_t n)
{
    const uint8_t *h = t->buf, *p = t->buf + UPP_VNET_HDR;
    unsigned gso;
    size_t len, ihl, headers;

    t->left = 0;
    t->reads++;
    if (n < UPP_VNET_HDR + 20 || n > UPP_VNET_HDR + 65535)
        return refuse(t);
    len = n - UPP_VNET_HDR;
    t->len = (uint32_t)len;
    t->at = 0;
    t->index = 0;
    gso = h[1];
    if (gso == VNET_GSO_NONE) {
        t->mss = 0;
        if (h[0] & VNET_F_NEEDS_CSUM) {
            /* the field holds the pseudo-header's sum: the rest is ours */
            size_t start = vnet16(h + 6), at = start + vnet16(h + 8);
            uint16_t sum;
            if (at + 2 > len)
                return refuse(t);
            sum = (uint16_t)~upp_csum_sum(p + start, len - start, 0);
            put16(t->buf + UPP_VNET_HDR + at, sum ? sum : 0xFFFF);
        }
        t->left = 1;
        return 1;
    }
    if ((gso & ~(unsigned)VNET_GSO_ECN) != VNET_GSO_TCPV4)
        return refuse(t);
    ihl = (size_t)(p[0] & 15) * 4;
    if (p[0] >> 4 != 4 || ihl < 20 || len < ihl + 20 || p[9] != IPPROTO_TCP_)
        return refuse(t);
    headers = ihl + (size_t)(p[ihl + 12] >> 4) * 4;
    t->mss = vnet16(h + 4);
    if (headers < ihl + 20 || headers >= len || t->mss == 0)
        return refuse(t);
    t->headers = (uint32_t)headers;
    t->at = (uint32_t)headers;
    t->left = (uint32_t)((len - headers + t->mss - 1) / t->mss);
    t->gso_reads++;
    return t->left;
}

ptrdiff_t upp_tso_next(upp_tso *t, uint8_t *out, size_t cap)
{
    const uint8_t *p = t->buf + UPP_VNET_HDR;
    size_t ihl, chunk, total, i;
    uint32_t seq;

    if (t->left == 0)
        return 0;
    if (t->mss == 0) {
        if (cap < t->len)
            return UPP_ERR_NOSPACE;
        memcpy(out, p, t->len);
        t->left = 0;
        return (ptrdiff_t)t->len;
    }
    chunk = t->len - t->at < t->mss ? t->len - t->at : t->mss;
    total = t->headers + chunk;
    if (cap < total)
        return UPP_ERR_NOSPACE;
    ihl = (size_t)(p[0] & 15) * 4;
    i = t->index;
    memcpy(out, p, t->headers);
    memcpy(out + t->headers, p + t->at, chunk);
    put16(out + 2, (uint16_t)total);
    put16(out + 4, (uint16_t)(((unsigned)p[4] << 8 | p[5]) + i));
    put16(out + 10, ipv4_header_checksum(out, ihl));
    seq = ((uint32_t)p[ihl + 4] << 24 | (uint32_t)p[ihl + 5] << 16
           | (uint32_t)p[ihl + 6] << 8 | p[ihl + 7]) + (t->at - t->headers);
    out[ihl + 4] = (uint8_t)(seq >> 24);
    out[ihl + 5] = (uint8_t)(seq >> 16);
    out[ihl + 6] = (uint8_t)(seq >> 8);
    out[ihl + 7] = (uint8_t)seq;
    if (t->left > 1)
        out[ihl + 13] &= (uint8_t)~(TCP_FIN | TCP_PSH);    /* the last one's */
    if (i > 0)
        out[ihl + 13] &= (uint8_t)~TCP_CWR;                /* the first one's */
    out[ihl + 16] = out[ihl + 17] = 0;
    put16(out + ihl + 16, tcp_checksum(out, ihl, total));
    t->at += (uint32_t)chunk;
    t->index++;
    t->left--;
    t->segments++;
    return (ptrdiff_t)total;
}
