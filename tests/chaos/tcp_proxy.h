/* tcp_proxy.h: a TCP proxy for fault injection, run inside a test process.
 *
 * It listens on 127.0.0.1 (a free port) and forwards every accepted connection to one
 * upstream address. A service is pointed at the proxy instead of the broker; the test
 * then breaks the link on demand:
 *   - stall: stop forwarding in one or both directions (bytes pile up in the kernel's
 *     socket buffers, as on a congested or half-dead link); resume later;
 *   - cut: reset every open connection (SO_LINGER 0 + close: the peer sees ECONNRESET);
 *   - refuse: close new connections at once (upstream unreachable).
 * A connection whose upstream cannot be reached is closed at once (the broker down).
 *
 * One thread accepts, one thread serves each connection (poll over both sockets, a
 * 64 KiB buffer per direction). Control calls may come from any thread. */
#ifndef WARREN_TCP_PROXY_H
#define WARREN_TCP_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tp_proxy tp_proxy;

enum {
  TP_UP = 1 << 0,   /* client -> upstream */
  TP_DOWN = 1 << 1, /* upstream -> client */
};

/* Starts a proxy to upstream_host:upstream_port (numeric IPv4). Returns 0 and *out, or
 * -errno (socket, bind, listen, thread creation). */
int tp_start(const char *upstream_host, unsigned upstream_port, tp_proxy **out);
/* The port the proxy listens on (127.0.0.1). */
unsigned tp_port(const tp_proxy *p);
/* Stalls the directions in `dirs` (TP_UP | TP_DOWN) and resumes the others; 0 resumes
 * everything. Applies to open and future connections. */
void tp_stall(tp_proxy *p, unsigned dirs);
/* Arms a trigger: once `up_bytes` more bytes have been forwarded client -> upstream
 * (over all connections), the upstream -> client direction stalls (as tp_stall(p,
 * TP_DOWN)). For "the request went out, the answer never came back" after a handshake
 * that needs both directions. tp_stall() disarms it. */
void tp_stall_down_after(tp_proxy *p, uint64_t up_bytes);
/* Resets every open connection; returns how many were open. */
size_t tp_cut(tp_proxy *p);
/* While on, new connections are accepted and closed at once. */
void tp_refuse(tp_proxy *p, bool on);
/* Connections open now / accepted since the start. */
size_t tp_open_connections(tp_proxy *p);
uint64_t tp_accepted(const tp_proxy *p);
/* Bytes forwarded so far in one direction (TP_UP or TP_DOWN). */
uint64_t tp_bytes(const tp_proxy *p, unsigned dir);
/* Closes every connection, stops the threads and frees. NULL allowed. */
void tp_stop(tp_proxy *p);

#endif
