/* The root process of a gVisor sandbox that holds a group's containers: it does nothing but
 * wait, reaps what is re-parented to it, and leaves on SIGTERM or SIGINT. Built static, as it
 * runs from a root filesystem that holds nothing else.
 *
 * `pause -h NAME`, executed in a booted sandbox, sets the sandbox's host name and exits: a
 * sandbox booted ahead of time for a pool gets the group's name when a group takes it. */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void leave(int sig) {
    (void)sig;
    _exit(0);
}

static void reap(int sig) {
    (void)sig;
    while (waitpid(-1, 0, WNOHANG) > 0) {
    }
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "-h") == 0) {
        size_t len = strlen(argv[2]);
        return len == 0 || len > 64 || sethostname(argv[2], len) != 0;
    }
    signal(SIGTERM, leave);
    signal(SIGINT, leave);
    signal(SIGCHLD, reap);
    for (;;) {
        pause();
    }
}
