#ifndef CEPOLL_H
#define CEPOLL_H

#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <netdb.h>

/* Thin wrappers over what Glibc's Swift overlay hides or exposes as macros.
   Every function returns what the syscall returns; errno is left for Swift. */

int CEpoll_create(void);
int CEpoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data);
int CEpoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout_ms);
uint32_t CEpoll_event_mask(const struct epoll_event *events, int index);
uint64_t CEpoll_event_data(const struct epoll_event *events, int index);

int CEpoll_eventfd(void);
int CEpoll_eventfd_signal(int fd);
int CEpoll_eventfd_drain(int fd);


int CEpoll_accept4(int fd, struct sockaddr *addr, socklen_t *len);
int CEpoll_socket_nonblocking(int domain, int type);
int CEpoll_set_reuseaddr(int fd);
int CEpoll_set_reuseport(int fd);
int CEpoll_set_nodelay(int fd);
int CEpoll_socket_error(int fd);

/* Constants that import badly (enum-typed or macro-defined). */
extern const uint32_t CEpoll_IN;
extern const uint32_t CEpoll_OUT;
extern const uint32_t CEpoll_ERR;
extern const uint32_t CEpoll_HUP;
extern const uint32_t CEpoll_RDHUP;
extern const int CEpoll_CTL_ADD;
extern const int CEpoll_CTL_MOD;
extern const int CEpoll_CTL_DEL;

#endif
