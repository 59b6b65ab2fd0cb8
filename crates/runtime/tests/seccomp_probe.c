/* Calls the syscalls the default seccomp profile denies, each with arguments the kernel would
 * accept or refuse for other reasons, and prints name=ok or name=<strerror>. Built static by
 * tests/seccomp.rs and run inside a busybox container. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static void report(const char *name, long r)
{
    printf("%s=%s\n", name, r < 0 ? strerror(errno) : "ok");
}

int main(void)
{
    long r;

    report("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0));
    report("add_key", syscall(SYS_add_key, "user", "probe", "x", 1, -3));
    report("request_key", syscall(SYS_request_key, "user", "probe", 0, 0));
    report("bpf", syscall(SYS_bpf, 0, 0, 0));
    report("perf_event_open", syscall(SYS_perf_event_open, 0, 0, -1, -1, 0));
    report("unshare_user", syscall(SYS_unshare, CLONE_NEWUSER));
    r = syscall(SYS_clone, CLONE_NEWNS | 17 /* SIGCHLD */, 0, 0, 0, 0);
    if (r == 0)
        _exit(0);
    report("clone_newns", r);
    report("socket_vsock", socket(40 /* AF_VSOCK */, SOCK_STREAM, 0));
    report("socket_inet", socket(AF_INET, SOCK_STREAM, 0));
    report("personality", syscall(SYS_personality, 0x0040000 /* ADDR_NO_RANDOMIZE */));
    report("unknown", syscall(1000));
    report("getpid", syscall(SYS_getpid));
    return 0;
}
