// emu-desc: AF_UNIX socketpair (stream, datagram, seqpacket): argument errors, data through read/write/send/recv/sendto/recvfrom/sendmsg/recvmsg, peek, truncation, shutdown, EPIPE and SIGPIPE, ECONNRESET, ECONNREFUSED, poll and epoll readiness, socket options and names, unconnected sockets, a thread and a forked child at the other end
// emu-cflags: -pthread
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *en(long r) {
    if (r >= 0) return "ok";
    switch (errno) {
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case EAGAIN: return "EAGAIN";
    case EPIPE: return "EPIPE";
    case ENOTSOCK: return "ENOTSOCK";
    case ENOTCONN: return "ENOTCONN";
    case EISCONN: return "EISCONN";
    case ECONNRESET: return "ECONNRESET";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
    case ESOCKTNOSUPPORT: return "ESOCKTNOSUPPORT";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ENOPROTOOPT: return "ENOPROTOOPT";
    case EMSGSIZE: return "EMSGSIZE";
    case ESPIPE: return "ESPIPE";
    default: return "other";
    }
}

static volatile sig_atomic_t pipes;
static void on_pipe(int s) { (void)s; pipes++; }

static void rd(const char *what, int fd, size_t len, int flags) {
    char b[256] = {0};
    long r = recv(fd, b, len, flags);
    printf("%-30s %ld %s \"%.*s\"\n", what, r, en(r), r > 0 ? (int)(r < (long)len ? r : (long)len) : 0, b);
}

static int pm(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLOUT | POLLRDHUP | POLLPRI};
    poll(&p, 1, 0);
    return p.revents;
}

static int tfd;
static void *late_send(void *arg) {
    (void)arg;
    struct timespec d = {0, 5 * 1000 * 1000};
    nanosleep(&d, NULL);
    if (send(tfd, "late", 4, 0) != 4) printf("late send failed\n");
    return NULL;
}

int main(void) {
    signal(SIGPIPE, on_pipe);
    int sv[2];
    long r;
    r = socketpair(AF_UNIX, SOCK_STREAM | 0x100000, 0, sv);
    printf("bad type flags: %s\n", en(r));
    r = socketpair(AF_UNIX, 0, 0, sv);
    printf("type 0: %s\n", en(r));
    r = socketpair(AF_UNIX, 4, 0, sv);
    printf("type SOCK_RDM: %s\n", en(r));
    r = socketpair(AF_UNIX, 15, 0, sv);
    printf("type 15: %s\n", en(r));
    r = socketpair(AF_UNIX, SOCK_STREAM, 5, sv);
    printf("protocol 5: %s\n", en(r));
    r = socketpair(99, SOCK_STREAM, 0, sv);
    printf("family 99: %s\n", en(r));
    r = socketpair(AF_UNIX, SOCK_STREAM, 0, (void *)8);
    printf("bad vector: %s\n", en(r));

    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) return 1;
    printf("stream: flags %#o %#o cloexec %d\n", fcntl(sv[0], F_GETFL), fcntl(sv[1], F_GETFL),
           fcntl(sv[0], F_GETFD));
    struct stat st;
    fstat(sv[0], &st);
    printf("fstat mode %#o nlink %lu size %ld\n", st.st_mode, (unsigned long)st.st_nlink,
           (long)st.st_size);
    printf("poll fresh %#x\n", pm(sv[0]));
    r = write(sv[0], "hello world", 11);
    printf("write %ld, peer poll %#x\n", r, pm(sv[1]));
    rd("recv 5", sv[1], 5, 0);
    rd("peek 3", sv[1], 3, MSG_PEEK);
    rd("recv rest", sv[1], 100, 0);
    rd("recv empty, DONTWAIT", sv[1], 100, MSG_DONTWAIT);
    send(sv[0], "ab", 2, 0);
    send(sv[0], "cd", 2, 0);
    rd("two sends, one recv", sv[1], 100, 0);
    char c;
    r = read(sv[1], &c, 0);
    printf("read 0 bytes: %ld\n", r);
    r = pread(sv[1], &c, 1, 0);
    printf("pread: %s\n", en(r));
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    strcpy(sun.sun_path + 1, "emu-abstract-nobody");
    r = sendto(sv[0], "x", 1, 0, (struct sockaddr *)&sun, sizeof sun);
    printf("sendto with an address on a stream: %s\n", en(r));
    printf("getsockopt level TCP: %s\n", en(getsockopt(sv[0], 6, 1, &c, &(socklen_t){1})));

    // Names and options.
    struct sockaddr_un name;
    socklen_t len = sizeof name;
    memset(&name, 0x55, sizeof name);
    r = getsockname(sv[0], (struct sockaddr *)&name, &len);
    printf("getsockname %s len %u family %d\n", en(r), len, name.sun_family);
    len = sizeof name;
    r = getpeername(sv[0], (struct sockaddr *)&name, &len);
    printf("getpeername %s len %u\n", en(r), len);
    int v;
    len = sizeof v;
    const int opts[] = {SO_TYPE, SO_DOMAIN, SO_PROTOCOL, SO_ERROR, SO_ACCEPTCONN, SO_SNDBUF, SO_RCVBUF};
    for (unsigned i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        len = sizeof v;
        r = getsockopt(sv[0], SOL_SOCKET, opts[i], &v, &len);
        printf("getsockopt %d: %s %d len %u\n", opts[i], en(r), v, len);
    }
    v = 10000;
    r = setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
    len = sizeof v;
    getsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &v, &len);
    printf("SO_SNDBUF 10000: %s -> %d\n", en(r), v);
    r = setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &v, 2);
    printf("setsockopt short: %s\n", en(r));
    struct ucred cr;
    len = sizeof cr;
    r = getsockopt(sv[0], SOL_SOCKET, SO_PEERCRED, &cr, &len);
    printf("SO_PEERCRED %s len %u pid is mine %d uid is mine %d\n", en(r), len, cr.pid == getpid(),
           cr.uid == getuid());
    int pp[2];
    if (pipe(pp)) return 1;
    len = sizeof v;
    printf("getsockopt on a pipe: %s\n", en(getsockopt(pp[0], SOL_SOCKET, SO_TYPE, &v, &len)));
    printf("shutdown a pipe: %s\n", en(shutdown(pp[0], SHUT_RD)));
    close(pp[0]);
    r = write(pp[1], "x", 1);
    printf("pipe write without a reader: %s sigpipes %d\n", en(r), pipes);
    printf("shutdown fd 99: %s\n", en(shutdown(99, SHUT_RD)));
    printf("shutdown how 3: %s\n", en(shutdown(sv[0], 3)));

    // Shutting the write side: the peer reads EOF, writes are EPIPE with SIGPIPE.
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.u64 = 1};
    epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev);
    struct epoll_event out[2];
    printf("epoll before: %d\n", epoll_wait(ep, out, 2, 0));
    send(sv[0], "bye", 3, 0);
    r = epoll_wait(ep, out, 2, 0);
    printf("epoll after a send: %ld %#x\n", r, r > 0 ? out[0].events : 0);
    shutdown(sv[0], SHUT_WR);
    r = epoll_wait(ep, out, 2, 0);
    printf("epoll after SHUT_WR: %ld %#x\n", r, r > 0 ? out[0].events : 0);
    printf("poll after SHUT_WR: writer %#x reader %#x\n", pm(sv[0]), pm(sv[1]));
    rd("recv after SHUT_WR", sv[1], 100, 0);
    rd("recv at EOF", sv[1], 100, 0);
    r = send(sv[0], "z", 1, 0);
    printf("send after SHUT_WR: %s sigpipes %d\n", en(r), pipes);
    r = send(sv[0], "z", 1, MSG_NOSIGNAL);
    printf("send MSG_NOSIGNAL: %s sigpipes %d\n", en(r), pipes);
    r = send(sv[1], "back", 4, 0);
    printf("the other way still works: %ld\n", r);
    rd("", sv[0], 100, 0);
    close(sv[0]);
    close(sv[1]);

    // Closing with unread data resets the peer.
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
    printf("nonblock flags %#o\n", fcntl(sv[0], F_GETFL));
    write(sv[0], "unread", 6);
    write(sv[1], "for you", 7);
    close(sv[1]);
    printf("poll after the peer closed with data unread: %#x\n", pm(sv[0]));
    rd("recv queued data", sv[0], 100, 0);
    rd("recv then", sv[0], 100, 0);
    rd("recv again", sv[0], 100, 0);
    r = write(sv[0], "x", 1);
    printf("write to a closed peer: %s sigpipes %d\n", en(r), pipes);
    printf("poll %#x\n", pm(sv[0]));
    close(sv[0]);

    // Datagrams.
    socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
    send(sv[0], "a", 1, 0);
    send(sv[0], "bcdef", 5, 0);
    send(sv[0], "", 0, 0);
    send(sv[0], "ghijk", 5, 0);
    send(sv[0], "lmnop", 5, 0);
    rd("dgram 1", sv[1], 2, 0);
    rd("dgram truncated", sv[1], 2, 0);
    rd("empty dgram", sv[1], 2, 0);
    rd("MSG_TRUNC", sv[1], 2, MSG_TRUNC);
    char b1[2], b2[2];
    struct iovec iov[2] = {{b1, 2}, {b2, 1}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    r = recvmsg(sv[1], &mh, 0);
    printf("recvmsg: %ld flags %#x \"%.2s%.1s\"\n", r, mh.msg_flags, b1, b2);
    struct iovec siov[2] = {{"sen", 3}, {"dmsg", 4}};
    struct msghdr smh = {.msg_iov = siov, .msg_iovlen = 2};
    r = sendmsg(sv[0], &smh, 0);
    printf("sendmsg %ld\n", r);
    socklen_t alen = sizeof name;
    char b[64];
    r = recvfrom(sv[1], b, sizeof b, 0, (struct sockaddr *)&name, &alen);
    printf("recvfrom %ld \"%.*s\" addrlen %u\n", r, (int)r, b, alen);
    r = sendto(sv[0], "x", 1, 0, (struct sockaddr *)&sun, sizeof sun);
    printf("dgram sendto an abstract name nobody has: %s\n", en(r));
    r = sendto(sv[0], "x", 1, 0, (struct sockaddr *)&sun, 1);
    printf("dgram sendto addrlen 1: %s\n", en(r));
    r = send(sv[0], "x", 1, MSG_OOB);
    printf("dgram MSG_OOB: %s\n", en(r));
    printf("poll dgram %#x %#x\n", pm(sv[0]), pm(sv[1]));
    close(sv[1]);
    printf("poll after the peer closed %#x\n", pm(sv[0]));
    r = send(sv[0], "x", 1, 0);
    printf("send to a closed peer: %s\n", en(r));
    r = send(sv[0], "x", 1, 0);
    printf("send again: %s\n", en(r));
    len = sizeof name;
    printf("getpeername: %s\n", en(getpeername(sv[0], (struct sockaddr *)&name, &len)));
    close(sv[0]);

    // Sequenced packets.
    socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv);
    len = sizeof v;
    getsockopt(sv[0], SOL_SOCKET, SO_TYPE, &v, &len);
    printf("seqpacket type %d\n", v);
    send(sv[0], "packet1", 7, 0);
    send(sv[0], "p2", 2, 0);
    rd("seqpacket truncated", sv[1], 3, 0);
    rd("seqpacket next", sv[1], 30, 0);
    close(sv[0]);
    printf("poll after the peer closed %#x\n", pm(sv[1]));
    rd("seqpacket EOF", sv[1], 30, 0);
    close(sv[1]);

    // Unconnected sockets reach nothing.
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    printf("socket: %s poll %#x\n", en(s), pm(s));
    r = connect(s, (struct sockaddr *)&sun, sizeof sun);
    printf("connect to an abstract name nobody has: %s\n", en(r));
    printf("listen unbound: %s\n", en(listen(s, 1)));
    printf("accept: %s\n", en(accept(s, NULL, NULL)));
    printf("send unconnected: %s\n", en(send(s, "x", 1, MSG_NOSIGNAL)));
    printf("recv unconnected: %s\n", en(recv(s, b, 1, MSG_DONTWAIT)));
    len = sizeof name;
    printf("getpeername unconnected: %s\n", en(getpeername(s, (struct sockaddr *)&name, &len)));
    close(s);
    printf("socket type 4: %s\n", en(socket(AF_UNIX, 4, 0)));

    // A blocked receiver woken by a thread; a forked child talking back.
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    tfd = sv[0];
    pthread_t th;
    pthread_create(&th, NULL, late_send, NULL);
    rd("blocking recv", sv[1], 100, 0);
    pthread_join(th, NULL);
    pid_t pid = fork();
    if (pid == 0) {
        char cb[16];
        long n = recv(sv[0], cb, sizeof cb, 0);
        for (long i = 0; i < n; i++) cb[i] ^= 0x20;
        _exit(send(sv[0], cb, n, 0) == n ? 0 : 1);
    }
    send(sv[1], "child", 5, 0);
    rd("from the child", sv[1], 100, 0);
    int status;
    waitpid(pid, &status, 0);
    printf("child status %d, sigpipes %d\n", status, pipes);
    return 0;
}
