/* The root process of a gVisor sandbox that holds a group's containers: it does nothing but
 * wait, reaps what is re-parented to it, and leaves on SIGTERM or SIGINT. Built static, as it
 * runs from a root filesystem that holds nothing else. */
#include <signal.h>
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

int main(void) {
    signal(SIGTERM, leave);
    signal(SIGINT, leave);
    signal(SIGCHLD, reap);
    for (;;) {
        pause();
    }
}
