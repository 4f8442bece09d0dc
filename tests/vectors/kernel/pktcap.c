/* pktcap: print every IPv4 packet crossing ppp0 (AF_PACKET, SOCK_DGRAM) as
 * one line "o HEX" (sent) or "i HEX" (received) to /tmp/cap.txt.  No libc
 * (raw syscalls), so one source builds static for x86_64 and i386. */
#if defined(__x86_64__)
#define SYS_write 1
#define SYS_open 2
#define SYS_ioctl 16
#define SYS_nanosleep 35
#define SYS_socket 41
#define SYS_recvfrom 45
#define SYS_bind 49
#define SYS_exit 60
static long sc6(long n, long a, long b, long c, long d, long e, long f)
{
    long r;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8),
                     "r"(r9) : "rcx", "r11", "memory");
    return r;
}
#elif defined(__i386__)
#define SYS_write 4
#define SYS_open 5
#define SYS_ioctl 54
#define SYS_nanosleep 162
#define SYS_socket 359
#define SYS_bind 361
#define SYS_recvfrom 371
#define SYS_exit 1
static long sc6(long n, long a, long b, long c, long d, long e, long f)
{
    /* the six arguments from memory: ebp (the sixth) and ebx are saved
       and restored around int 0x80 */
    long blk[6] = {a, b, c, d, e, f};
    long *p = blk;
    __asm__ volatile("push %%ebp\n\tpush %%ebx\n\tpush %%esi\n\tpush %%edi\n\t"
                     "mov 0(%%ecx), %%ebx\n\tmov 8(%%ecx), %%edx\n\tmov 12(%%ecx), %%esi\n\t"
                     "mov 16(%%ecx), %%edi\n\tmov 20(%%ecx), %%ebp\n\tmov 4(%%ecx), %%ecx\n\t"
                     "int $0x80\n\tpop %%edi\n\tpop %%esi\n\tpop %%ebx\n\tpop %%ebp"
                     : "+a"(n), "+c"(p) : : "edx", "memory");
    return n;
}
#else
#error "x86_64 or i386"
#endif
#define sc(n, a, b, c) sc6(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)

struct sockaddr_ll { unsigned short family, protocol; int ifindex; unsigned short hatype;
                     unsigned char pkttype, halen; unsigned char addr[8]; };
struct ifreq { char name[16]; int ifindex; char pad[20]; };

static unsigned char buf[70000];
static char line[140010];

__attribute__((force_align_arg_pointer, noreturn)) void _start(void)
{
    static const char hex[] = "0123456789abcdef";
    struct ifreq ifr = {{'p', 'p', 'p', '0'}, 0, {0}};
    struct sockaddr_ll sll = {0}, from;
    long s = sc(SYS_socket, 17 /* AF_PACKET */, 2 /* SOCK_DGRAM */, 0x0300 /* htons(ETH_P_ALL) */);
    long out = sc(SYS_open, "/tmp/cap.txt", 01 | 0100 | 01000, 0644);
    long ts[2] = {0, 50000000};
    if (s < 0 || out < 0)
        sc(SYS_exit, 2, 0, 0);
    while (sc(SYS_ioctl, s, 0x8933 /* SIOCGIFINDEX */, &ifr) < 0)
        sc(SYS_nanosleep, ts, 0, 0);
    sll.family = 17;
    sll.protocol = 0x0300;
    sll.ifindex = ifr.ifindex;
    if (sc(SYS_bind, s, &sll, sizeof sll) < 0)
        sc(SYS_exit, 3, 0, 0);
    sc(SYS_write, 1, "PKTCAP-READY\n", 13);
    for (;;) {
        long fl = sizeof from;
        long n = sc6(SYS_recvfrom, s, (long)buf, sizeof buf, 0, (long)&from, (long)&fl);
        long i, k = 0;
        if (n <= 0)
            continue;
        line[k++] = from.pkttype == 4 /* PACKET_OUTGOING */ ? 'o' : 'i';
        line[k++] = ' ';
        for (i = 0; i < n; i++) {
            line[k++] = hex[buf[i] >> 4];
            line[k++] = hex[buf[i] & 15];
        }
        line[k++] = '\n';
        sc(SYS_write, out, line, k);
    }
}
