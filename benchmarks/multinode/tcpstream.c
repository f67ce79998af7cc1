// One TCP stream between two hosts (here: two node namespaces of the
// emulated cluster), the raw limit beside which rankhub's cross-node path is
// measured. The same stream as ../shared/anchors/sockbw.c (1 MiB writes,
// TCP_NODELAY, default socket buffers), with the two ends in different
// processes started on different nodes. The receiver times from the first
// byte to the last and prints GB/s (1 GB = 1e9 B).
// Build: gcc -O2 -o tcpstream tcpstream.c
// Usage: ./tcpstream recv PORT LABEL      (serves one stream, prints RESULT LABEL x GB/s)
//        ./tcpstream send ADDR PORT [total_MiB=4096] [chunk_KiB=1024]
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static void die(const char *m) { perror(m); exit(1); }
int main(int argc, char **argv) {
  if (argc >= 4 && !strcmp(argv[1], "recv")) {
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET; a.sin_addr.s_addr = htonl(INADDR_ANY); a.sin_port = htons(atoi(argv[2]));
    if (bind(s, (void *)&a, sizeof a)) die("bind");
    if (listen(s, 1)) die("listen");
    int c = accept(s, 0, 0);
    if (c < 0) die("accept");
    size_t cap = 4 << 20, got = 0;
    char *buf = malloc(cap);
    double t0 = 0;
    for (;;) {
      ssize_t k = read(c, buf, cap);
      if (k < 0) die("read");
      if (k == 0) break;
      if (got == 0) t0 = now();
      got += k;
    }
    double dt = now() - t0;
    if (got == 0) { fprintf(stderr, "tcpstream: no bytes received\n"); return 1; }
    printf("RESULT %s %.4g GB/s\n", argv[3], got / dt / 1e9);
    return 0;
  }
  if (argc >= 4 && !strcmp(argv[1], "send")) {
    size_t total = (size_t)(argc > 4 ? atol(argv[4]) : 4096) << 20, chunk = (size_t)(argc > 5 ? atol(argv[5]) : 1024) << 10;
    char *buf = malloc(chunk);
    memset(buf, 1, chunk);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET; a.sin_port = htons(atoi(argv[3]));
    if (inet_pton(AF_INET, argv[2], &a.sin_addr) != 1) { fprintf(stderr, "tcpstream: bad address %s\n", argv[2]); return 2; }
    int s = -1;
    for (int i = 0; i < 100; i++) { // the receiver may not listen yet
      s = socket(AF_INET, SOCK_STREAM, 0);
      if (!connect(s, (void *)&a, sizeof a)) break;
      close(s); s = -1; usleep(20000);
    }
    if (s < 0) die("connect");
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (size_t sent = 0; sent < total;) {
      size_t n = total - sent < chunk ? total - sent : chunk;
      for (size_t off = 0; off < n;) {
        ssize_t k = write(s, buf + off, n - off);
        if (k <= 0) die("write");
        off += k;
      }
      sent += n;
    }
    close(s);
    return 0;
  }
  fprintf(stderr, "usage: tcpstream recv PORT LABEL | tcpstream send ADDR PORT [total_MiB] [chunk_KiB]\n");
  return 2;
}
