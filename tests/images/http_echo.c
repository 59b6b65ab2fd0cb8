/*
 * An HTTP or HTTPS server for the probe and hook tests (tests/e2e/test_probes.py), linked
 * static so that it runs in the busybox image:
 *
 *     berth-http-echo PORT [CERT.pem KEY.pem]
 *
 * It answers every GET with 200 "ok" and writes each request's head (request line and
 * headers, at most 8 KiB) to stdout as lines "PORT> LINE", so that the container's log shows
 * what arrived. With a certificate and key it speaks only TLS.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define HEAD_MAX 8192

static const char reply[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
    "Connection: close\r\n\r\nok\n";

static void log_head(int port, const char *head) {
    const char *line = head;
    while (*line) {
        const char *end = strstr(line, "\r\n");
        size_t n = end ? (size_t)(end - line) : strlen(line);
        if (n == 0)
            break;
        printf("%d> %.*s\n", port, (int)n, line);
        line += n + (end ? 2 : 0);
    }
    fflush(stdout);
}

/* Reads until the blank line that ends the head; returns its length, or -1. */
static int read_head(SSL *ssl, int fd, char *buf) {
    int len = 0;
    while (len < HEAD_MAX - 1) {
        int n = ssl ? SSL_read(ssl, buf + len, HEAD_MAX - 1 - len)
                    : (int)read(fd, buf + len, HEAD_MAX - 1 - len);
        if (n <= 0)
            return -1;
        len += n;
        buf[len] = 0;
        if (strstr(buf, "\r\n\r\n"))
            return len;
    }
    return len;
}

int main(int argc, char **argv) {
    if (argc != 2 && argc != 4) {
        fprintf(stderr, "usage: %s PORT [CERT.pem KEY.pem]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    signal(SIGPIPE, SIG_IGN);
    SSL_CTX *ctx = NULL;
    if (argc == 4) {
        ctx = SSL_CTX_new(TLS_server_method());
        if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, argv[2]) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, argv[3], SSL_FILETYPE_PEM) != 1) {
            ERR_print_errors_fp(stderr);
            return 1;
        }
    }
    int srv = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (srv < 0 || bind(srv, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(srv, 16) != 0) {
        perror("listen");
        return 1;
    }
    printf("%d> listening%s\n", port, ctx ? " with TLS" : "");
    fflush(stdout);
    for (;;) {
        int fd = accept(srv, NULL, NULL);
        if (fd < 0)
            continue;
        struct timeval tv = {.tv_sec = 5};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        SSL *ssl = NULL;
        if (ctx) {
            ssl = SSL_new(ctx);
            SSL_set_fd(ssl, fd);
            if (SSL_accept(ssl) != 1) {
                printf("%d> TLS handshake failed\n", port);
                fflush(stdout);
                SSL_free(ssl);
                close(fd);
                continue;
            }
        }
        char head[HEAD_MAX];
        if (read_head(ssl, fd, head) > 0) {
            log_head(port, head);
            if (ssl)
                SSL_write(ssl, reply, sizeof reply - 1);
            else
                (void)!write(fd, reply, sizeof reply - 1);
        }
        if (ssl) {
            SSL_shutdown(ssl);
            SSL_free(ssl);
        }
        close(fd);
    }
}
