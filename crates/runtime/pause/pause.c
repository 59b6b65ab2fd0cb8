/* The root process of a gVisor sandbox that holds a group's containers: it does nothing but
 * wait, reaps what is re-parented to it, and leaves on SIGTERM or SIGINT. Built static, as it
 * runs from a root filesystem that holds nothing else.
 *
 * `pause -n` (a sandbox booted ahead of time for a pool) first takes host names from its
 * standard input, one a line: it sets each as the sandbox's host name and answers
 * `hostname NAME` on its standard output (`hostname-failed NAME` when the kernel refused it),
 * so that the group that takes the sandbox gets its name without a process started in it.
 * Lines longer than a host name are skipped. At the end of its input it only waits. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The longest host name the kernel takes. */
#define NAME_MAX_LEN 64

static void leave(int sig) {
    (void)sig;
    _exit(0);
}

static void reap(int sig) {
    (void)sig;
    while (waitpid(-1, 0, WNOHANG) > 0) {
    }
}

static void say(const char *what, const char *name, size_t len) {
    char out[sizeof "hostname-failed " + NAME_MAX_LEN + 1];
    size_t n = strlen(what);
    memcpy(out, what, n);
    memcpy(out + n, name, len);
    out[n + len] = '\n';
    ssize_t done = 0, total = (ssize_t)(n + len + 1);
    while (done < total) {
        ssize_t w = write(1, out + done, (size_t)(total - done));
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return;
        }
        done += w;
    }
}

static void set_name(const char *name, size_t len) {
    if (sethostname(name, len) == 0) {
        say("hostname ", name, len);
    } else {
        say("hostname-failed ", name, len);
    }
}

/* Sets a host name for every line of standard input until its end. */
static void serve_names(void) {
    char name[NAME_MAX_LEN];
    size_t len = 0;
    int too_long = 0;
    char buf[256];
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return;
        }
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n') {
                if (!too_long && len > 0) {
                    set_name(name, len);
                }
                len = 0;
                too_long = 0;
            } else if (len < NAME_MAX_LEN) {
                name[len++] = buf[i];
            } else {
                too_long = 1;
            }
        }
    }
}

int main(int argc, char **argv) {
    signal(SIGTERM, leave);
    signal(SIGINT, leave);
    signal(SIGCHLD, reap);
    if (argc == 2 && strcmp(argv[1], "-n") == 0) {
        serve_names();
    }
    for (;;) {
        pause();
    }
}
