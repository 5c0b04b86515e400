#include "CEpoll.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

const uint32_t CEpoll_IN = EPOLLIN;
const uint32_t CEpoll_OUT = EPOLLOUT;
const uint32_t CEpoll_ERR = EPOLLERR;
const uint32_t CEpoll_HUP = EPOLLHUP;
const uint32_t CEpoll_RDHUP = EPOLLRDHUP;
const int CEpoll_CTL_ADD = EPOLL_CTL_ADD;
const int CEpoll_CTL_MOD = EPOLL_CTL_MOD;
const int CEpoll_CTL_DEL = EPOLL_CTL_DEL;

int CEpoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int CEpoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.u64 = data;
    return epoll_ctl(epfd, op, fd, &ev);
}

int CEpoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout_ms) {
    return epoll_wait(epfd, events, maxevents, timeout_ms);
}

/* struct epoll_event is packed; reading its fields here keeps Swift away
   from unaligned loads. */
uint32_t CEpoll_event_mask(const struct epoll_event *events, int index) { return events[index].events; }
uint64_t CEpoll_event_data(const struct epoll_event *events, int index) { return events[index].data.u64; }

int CEpoll_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

int CEpoll_eventfd_signal(int fd) {
    uint64_t one = 1;
    ssize_t n = write(fd, &one, sizeof one);
    /* EAGAIN means the counter is already non-zero: the loop will wake anyway. */
    return (n == sizeof one || errno == EAGAIN) ? 0 : -1;
}

int CEpoll_eventfd_drain(int fd) {
    uint64_t value;
    return read(fd, &value, sizeof value) == sizeof value ? 0 : -1;
}

int CEpoll_accept4(int fd, struct sockaddr *addr, socklen_t *len) {
    return accept4(fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int CEpoll_socket_nonblocking(int domain, int type) {
    return socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

static int set_int_option(int fd, int level, int name) {
    int one = 1;
    return setsockopt(fd, level, name, &one, sizeof one);
}

int CEpoll_set_reuseaddr(int fd) { return set_int_option(fd, SOL_SOCKET, SO_REUSEADDR); }
int CEpoll_set_reuseport(int fd) { return set_int_option(fd, SOL_SOCKET, SO_REUSEPORT); }
int CEpoll_set_nodelay(int fd) { return set_int_option(fd, IPPROTO_TCP, TCP_NODELAY); }

int CEpoll_socket_error(int fd) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return errno;
    return err;
}
