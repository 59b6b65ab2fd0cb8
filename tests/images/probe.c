/*
 * berth-probe: escape attempts a hostile tenant makes from inside a container, each reported
 * on one line as
 *
 *     PROBE <name> denied|allowed <detail>
 *
 * "denied" means the attempt failed (the container holds); "allowed" means it worked. The
 * end-to-end tests (tests/e2e/test_escape.py) run every probe under crun and under runc and
 * say which mechanism is expected to stop each one.
 *
 *     berth-probe [--foreign-pids PID,...] [--host-path PATH] [--devices PATH,...]
 *
 * --foreign-pids: host pids of processes outside the container (another container's init,
 * a monitor), which must be neither visible nor reachable; --host-path: a path that exists
 * on the host only, which a chroot escape must not reach; --devices: device nodes the image
 * ships, which must not open.
 *
 * Every probe runs in a child process, so that one that works (a new namespace, a chroot)
 * cannot change what the next one sees. Built statically by tests/images/build.sh.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <linux/reboot.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/klog.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/if_ether.h>
#include <linux/magic.h>
#include <netinet/in.h>

#define MAX_ARGS 64
/* Where the mount probes mount; made by main() (the image has no /mnt). */
#define MNT "/tmp/.probe-mnt"

static pid_t foreign[MAX_ARGS];
static int nforeign;
static const char *devices[MAX_ARGS];
static int ndevices;
static const char *host_path = "/nonexistent-host-path";

/* A probe returns 0 when the attempt failed, 1 when it worked; it writes its detail. */
typedef int (*probe_fn)(char *detail, size_t len);

static int failed(char *detail, size_t len, const char *what)
{
    snprintf(detail, len, "%s: %s", what, strerror(errno));
    return 0;
}

static int worked(char *detail, size_t len, const char *what)
{
    snprintf(detail, len, "%s", what);
    return 1;
}

/* ------------------------------------------------------------------ mounts and namespaces */

static int p_mount_tmpfs(char *d, size_t n)
{
    if (mount("tmpfs", MNT, "tmpfs", 0, "size=1m") != 0)
        return failed(d, n, "mount a tmpfs");
    return worked(d, n, "mounted a tmpfs");
}

static int p_mount_proc(char *d, size_t n)
{
    if (mount("proc", MNT, "proc", 0, NULL) != 0)
        return failed(d, n, "mount proc");
    return worked(d, n, "mounted a fresh, unmasked procfs");
}

static int p_mount_bind(char *d, size_t n)
{
    if (mount("/", MNT, NULL, MS_BIND, NULL) != 0)
        return failed(d, n, "bind-mount /");
    return worked(d, n, "bind-mounted /");
}

static int p_remount_proc_sys(char *d, size_t n)
{
    if (mount(NULL, "/proc/sys", NULL, MS_REMOUNT | MS_BIND, NULL) != 0)
        return failed(d, n, "remount /proc/sys read-write");
    return worked(d, n, "remounted /proc/sys read-write");
}

static int p_umount_mask(char *d, size_t n)
{
    if (umount2("/proc/keys", MNT_DETACH) != 0)
        return failed(d, n, "umount the mask of /proc/keys");
    return worked(d, n, "unmounted the mask over /proc/keys");
}

static int p_fsopen(char *d, size_t n)
{
    long fd = syscall(SYS_fsopen, "tmpfs", 0);
    if (fd < 0)
        return failed(d, n, "fsopen tmpfs");
    return worked(d, n, "fsopen gave a tmpfs context");
}

static int p_unshare(int flags, const char *what, char *d, size_t n)
{
    if (unshare(flags) != 0)
        return failed(d, n, what);
    return worked(d, n, what);
}

#define UNSHARE_PROBE(fn, flag)                                                               \
    static int fn(char *d, size_t n) { return p_unshare(flag, "unshare(" #flag ")", d, n); }
UNSHARE_PROBE(p_unshare_mount, CLONE_NEWNS)
UNSHARE_PROBE(p_unshare_net, CLONE_NEWNET)
UNSHARE_PROBE(p_unshare_pid, CLONE_NEWPID)
UNSHARE_PROBE(p_unshare_cgroup, CLONE_NEWCGROUP)
UNSHARE_PROBE(p_unshare_user, CLONE_NEWUSER)

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t w = write(fd, text, strlen(text));
    int saved = errno;
    close(fd);
    errno = saved;
    return w == (ssize_t)strlen(text) ? 0 : -1;
}

/* A user namespace gives every capability inside it: with a mount namespace of its own, a
 * tenant mounts what it likes (the first step of many kernel exploits). */
static int p_userns_mount(char *d, size_t n)
{
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0)
        return failed(d, n, "unshare(CLONE_NEWUSER|CLONE_NEWNS)");
    write_file("/proc/self/setgroups", "deny");
    write_file("/proc/self/uid_map", "0 0 1");
    write_file("/proc/self/gid_map", "0 0 1");
    if (mount("tmpfs", MNT, "tmpfs", 0, "size=1m") != 0)
        return failed(d, n, "in a new user namespace, mount a tmpfs");
    return worked(d, n, "in a new user and mount namespace, mounted a tmpfs");
}

/* Even with a user namespace, the masks are locked mounts: /proc/keys stays hidden. */
static int p_userns_unmask(char *d, size_t n)
{
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0)
        return failed(d, n, "unshare(CLONE_NEWUSER|CLONE_NEWNS)");
    write_file("/proc/self/setgroups", "deny");
    write_file("/proc/self/uid_map", "0 0 1");
    write_file("/proc/self/gid_map", "0 0 1");
    if (umount2("/proc/keys", MNT_DETACH) != 0)
        return failed(d, n, "in a new user namespace, umount the mask of /proc/keys");
    return worked(d, n, "in a new user namespace, unmounted the mask over /proc/keys");
}

/* The classic chroot break-out: chroot into a subdirectory, walk up past it, chroot there.
 * It must end at the container's own root, never the host's. */
static int p_chroot_escape(char *d, size_t n)
{
    struct stat before, after, host;
    if (stat("/", &before) != 0)
        return failed(d, n, "stat /");
    mkdir("/tmp/.probe-jail", 0700);
    if (chroot("/tmp/.probe-jail") != 0)
        return failed(d, n, "chroot");
    for (int i = 0; i < 64; i++)
        if (chdir("..") != 0)
            break;
    if (chroot(".") != 0)
        return failed(d, n, "chroot back out");
    if (stat("/", &after) != 0)
        return failed(d, n, "stat / after the escape");
    if (stat(host_path, &host) == 0) {
        snprintf(d, n, "reached the host's %s", host_path);
        return 1;
    }
    if (after.st_dev != before.st_dev || after.st_ino != before.st_ino) {
        snprintf(d, n, "left the container's root (dev %lu ino %lu)", (unsigned long)after.st_dev,
                 (unsigned long)after.st_ino);
        return 1;
    }
    snprintf(d, n, "the walk up ended at the container's own root");
    return 0;
}

static int p_pivot_root(char *d, size_t n)
{
    if (syscall(SYS_pivot_root, "/tmp", "/tmp") != 0)
        return failed(d, n, "pivot_root");
    return worked(d, n, "pivot_root worked");
}

/* ------------------------------------------------------------------ other processes */

/* Only the probe's own processes are visible: no monitor, no runtime, no other container. */
static int p_processes(char *d, size_t n)
{
    DIR *dir = opendir("/proc");
    if (!dir)
        return failed(d, n, "opendir /proc");
    struct dirent *e;
    int others = 0;
    char first[256] = "";
    pid_t me = getpid(), parent = getppid();
    while ((e = readdir(dir))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        if (pid == me || pid == parent || pid == 1)
            continue;
        char path[64], cmd[128] = "";
        snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
        int fd = open(path, O_RDONLY);
        if (fd >= 0) {
            ssize_t r = read(fd, cmd, sizeof cmd - 1);
            close(fd);
            if (r > 0) {
                cmd[r] = 0;
                for (ssize_t i = 0; i < r; i++)
                    if (!cmd[i])
                        cmd[i] = ' ';
            }
        }
        /* Other probes of this run may still be ending. */
        if (strstr(cmd, "berth-probe"))
            continue;
        if (!others)
            snprintf(first, sizeof first, "pid %ld (%s)", pid, cmd);
        others++;
    }
    closedir(dir);
    if (others) {
        snprintf(d, n, "%d foreign processes visible, e.g. %s", others, first);
        return 1;
    }
    snprintf(d, n, "only the container's own processes are visible");
    return 0;
}

static int each_foreign(char *d, size_t n, int (*try)(pid_t, char *, size_t))
{
    if (!nforeign) {
        snprintf(d, n, "no --foreign-pids given");
        return 1;
    }
    for (int i = 0; i < nforeign; i++)
        if (try(foreign[i], d, n))
            return 1;
    return 0;
}

static int try_ptrace(pid_t pid, char *d, size_t n)
{
    if (ptrace(PTRACE_ATTACH, pid, NULL, NULL) != 0) {
        snprintf(d, n, "ptrace attach %d: %s", pid, strerror(errno));
        return 0;
    }
    ptrace(PTRACE_DETACH, pid, NULL, NULL);
    snprintf(d, n, "attached to pid %d", pid);
    return 1;
}

static int try_kill(pid_t pid, char *d, size_t n)
{
    if (kill(pid, 0) != 0) {
        snprintf(d, n, "kill -0 %d: %s", pid, strerror(errno));
        return 0;
    }
    snprintf(d, n, "can signal pid %d", pid);
    return 1;
}

static int try_root(pid_t pid, char *d, size_t n)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/root/", pid);
    DIR *dir = opendir(path);
    if (!dir) {
        snprintf(d, n, "open %s: %s", path, strerror(errno));
        return 0;
    }
    closedir(dir);
    snprintf(d, n, "opened %s", path);
    return 1;
}

static int p_ptrace_foreign(char *d, size_t n) { return each_foreign(d, n, try_ptrace); }
static int p_kill_foreign(char *d, size_t n) { return each_foreign(d, n, try_kill); }
static int p_root_foreign(char *d, size_t n) { return each_foreign(d, n, try_root); }

/* ------------------------------------------------------------------ kernel interfaces */

static int p_keyctl(char *d, size_t n)
{
    long id = syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 1);
    if (id < 0)
        return failed(d, n, "keyctl(KEYCTL_GET_KEYRING_ID, user keyring)");
    snprintf(d, n, "the user keyring of uid %d (shared with the host) is %ld", getuid(), id);
    return 1;
}

static int p_add_key(char *d, size_t n)
{
    long id = syscall(SYS_add_key, "user", "berth-probe", "x", 1, KEY_SPEC_THREAD_KEYRING);
    if (id < 0)
        return failed(d, n, "add_key");
    snprintf(d, n, "added key %ld", id);
    return 1;
}

static int p_bpf(char *d, size_t n)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    long fd = syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr);
    if (fd < 0)
        return failed(d, n, "bpf(BPF_MAP_CREATE)");
    return worked(d, n, "created a BPF map");
}

static int p_perf_event(char *d, size_t n)
{
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.size = sizeof attr;
    attr.type = PERF_TYPE_SOFTWARE;
    attr.config = PERF_COUNT_SW_CPU_CLOCK;
    /* Every process on the CPU, not only this one. */
    long fd = syscall(SYS_perf_event_open, &attr, -1, 0, -1, 0);
    if (fd < 0)
        return failed(d, n, "perf_event_open(all processes on cpu 0)");
    return worked(d, n, "opened a CPU-wide perf event");
}

static int p_init_module(char *d, size_t n)
{
    if (syscall(SYS_init_module, NULL, 0, "") != 0)
        return failed(d, n, "init_module");
    return worked(d, n, "init_module");
}

static int p_finit_module(char *d, size_t n)
{
    int fd = open("/bin/busybox", O_RDONLY | O_CLOEXEC);
    if (syscall(SYS_finit_module, fd, "", 0) != 0)
        return failed(d, n, "finit_module");
    return worked(d, n, "finit_module");
}

static int p_syslog(char *d, size_t n)
{
    char buf[64];
    if (klogctl(3 /* SYSLOG_ACTION_READ_ALL */, buf, sizeof buf) < 0)
        return failed(d, n, "syslog(READ_ALL)");
    return worked(d, n, "read the host's kernel log");
}

static int p_iopl(char *d, size_t n)
{
    if (iopl(3) != 0)
        return failed(d, n, "iopl(3)");
    return worked(d, n, "iopl(3)");
}

static int p_settime(char *d, size_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (clock_settime(CLOCK_REALTIME, &ts) != 0)
        return failed(d, n, "clock_settime");
    return worked(d, n, "set the host's clock");
}

static int p_reboot(char *d, size_t n)
{
    /* Harmless even where it is allowed: only turns off Ctrl-Alt-Del handling. */
    if (syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_CAD_OFF,
                NULL) != 0)
        return failed(d, n, "reboot(CAD_OFF)");
    return worked(d, n, "reboot(CAD_OFF)");
}

static int p_kexec(char *d, size_t n)
{
    if (syscall(SYS_kexec_load, 0, 0, NULL, 0) != 0)
        return failed(d, n, "kexec_load");
    return worked(d, n, "kexec_load");
}

static int p_swapon(char *d, size_t n)
{
    if (swapon("/tmp/.probe-swap", 0) != 0)
        return failed(d, n, "swapon");
    return worked(d, n, "swapon");
}

static int p_acct(char *d, size_t n)
{
    if (acct("/tmp/.probe-acct") != 0)
        return failed(d, n, "acct");
    acct(NULL);
    return worked(d, n, "acct");
}

static int p_sethostname(char *d, size_t n)
{
    if (sethostname("berth-probe-escaped", 19) != 0)
        return failed(d, n, "sethostname");
    return worked(d, n, "sethostname");
}

/* Shocker: open_by_handle_at opens any inode of a file system, bypassing the mount. The
 * bind-mounted /etc/hosts lives on the host's file system. */
static int p_open_by_handle(char *d, size_t n)
{
    struct {
        struct file_handle fh;
        unsigned char bytes[128];
    } h;
    h.fh.handle_bytes = sizeof h.bytes;
    int mount_id;
    if (name_to_handle_at(AT_FDCWD, "/etc/hosts", &h.fh, &mount_id, 0) != 0)
        return failed(d, n, "name_to_handle_at /etc/hosts");
    int mount_fd = open("/etc/hosts", O_RDONLY | O_CLOEXEC);
    int fd = open_by_handle_at(mount_fd, &h.fh, O_RDONLY);
    if (fd < 0)
        return failed(d, n, "open_by_handle_at");
    return worked(d, n, "open_by_handle_at opened a host inode by its handle");
}

/* ------------------------------------------------------------------ sockets */

static int p_raw_socket(char *d, size_t n)
{
    int fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    if (fd < 0)
        return failed(d, n, "socket(AF_INET, SOCK_RAW)");
    return worked(d, n, "opened a raw IPv4 socket");
}

static int p_packet_socket(char *d, size_t n)
{
    int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    if (fd < 0)
        return failed(d, n, "socket(AF_PACKET, SOCK_RAW)");
    return worked(d, n, "opened a packet socket");
}

/* ------------------------------------------------------------------ files */

/* Reads a file: denied when it cannot be opened or holds nothing (masked with /dev/null). */
static int read_hidden(const char *path, char *d, size_t n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(d, n, "open %s: %s", path, strerror(errno));
        return 0;
    }
    char buf[512];
    ssize_t r = read(fd, buf, sizeof buf);
    int saved = errno;
    close(fd);
    if (r < 0) {
        snprintf(d, n, "read %s: %s", path, strerror(saved));
        return 0;
    }
    if (r == 0) {
        snprintf(d, n, "%s reads empty (masked)", path);
        return 0;
    }
    snprintf(d, n, "read %zd bytes of %s", r, path);
    return 1;
}

static int p_kcore(char *d, size_t n) { return read_hidden("/proc/kcore", d, n); }
static int p_proc_keys(char *d, size_t n) { return read_hidden("/proc/keys", d, n); }
static int p_timer_list(char *d, size_t n) { return read_hidden("/proc/timer_list", d, n); }
static int p_sched_debug(char *d, size_t n) { return read_hidden("/proc/sched_debug", d, n); }
static int p_kmsg(char *d, size_t n) { return read_hidden("/dev/kmsg", d, n); }

/* A directory that must look empty (masked with a read-only tmpfs) or be missing. */
static int p_sys_firmware(char *d, size_t n)
{
    DIR *dir = opendir("/sys/firmware");
    if (!dir)
        return failed(d, n, "opendir /sys/firmware");
    struct dirent *e;
    int entries = 0;
    while ((e = readdir(dir)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            entries++;
    closedir(dir);
    if (entries) {
        snprintf(d, n, "/sys/firmware lists %d entries", entries);
        return 1;
    }
    snprintf(d, n, "/sys/firmware is empty (masked)");
    return 0;
}

static int try_write(const char *path, const char *text, char *d, size_t n)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(d, n, "open %s for writing: %s", path, strerror(errno));
        return 0;
    }
    ssize_t w = write(fd, text, strlen(text));
    int saved = errno;
    close(fd);
    if (w < 0) {
        snprintf(d, n, "write %s: %s", path, strerror(saved));
        return 0;
    }
    snprintf(d, n, "wrote %s", path);
    return 1;
}

/* Writes of these are harmless even where they work: the values are the ones set already,
 * or, for sysrq, a key that does nothing ("" is refused before any key is read). */
static int p_sysrq(char *d, size_t n)
{
    int fd = open("/proc/sysrq-trigger", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return failed(d, n, "open /proc/sysrq-trigger for writing");
    close(fd);
    return worked(d, n, "opened /proc/sysrq-trigger for writing");
}

static int rewrite_same(const char *path, char *d, size_t n)
{
    char buf[4096];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return failed(d, n, path);
    ssize_t r = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[r > 0 ? r : 0] = 0;
    return try_write(path, buf, d, n);
}

#define REWRITE_PROBE(fn, path)                                                               \
    static int fn(char *d, size_t n) { return rewrite_same(path, d, n); }
REWRITE_PROBE(p_core_pattern, "/proc/sys/kernel/core_pattern")
REWRITE_PROBE(p_vm_sysctl, "/proc/sys/vm/overcommit_memory")
REWRITE_PROBE(p_net_sysctl, "/proc/sys/net/ipv4/ip_forward")
REWRITE_PROBE(p_uevent_helper, "/sys/kernel/uevent_helper")

/* Whether fd is on a kernel file system whose files act on the host (cgroupfs, procfs,
 * sysfs), not on a tmpfs the runtime put in between. */
static int kernel_fs(int fd)
{
    struct statfs fs;
    if (fstatfs(fd, &fs) != 0)
        return 0;
    return fs.f_type == CGROUP_SUPER_MAGIC || fs.f_type == CGROUP2_SUPER_MAGIC ||
           fs.f_type == PROC_SUPER_MAGIC || fs.f_type == SYSFS_MAGIC;
}

/* Every writable regular file below root on a kernel file system that opens for writing
 * (opening changes nothing: cgroup and sysctl files act on write). Symlinks are not
 * followed. */
static int walk_writable(const char *root, int depth, int *count, char *first, size_t flen,
                         int *seen)
{
    DIR *dir = opendir(root);
    if (!dir)
        return -1;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        /* The processes' own files are the container's; a PSI trigger (/proc/pressure) is
         * open to every process by design and changes nothing but the poll of its own fd. */
        if (!strcmp(root, "/proc") &&
            (strspn(e->d_name, "0123456789") == strlen(e->d_name) || !strcmp(e->d_name, "self") ||
             !strcmp(e->d_name, "thread-self") || !strcmp(e->d_name, "pressure")))
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", root, e->d_name);
        struct stat st;
        if (lstat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            if (depth > 0)
                walk_writable(path, depth - 1, count, first, flen, seen);
        } else if (S_ISREG(st.st_mode) && (st.st_mode & 0222)) {
            /* Without a write bit there is no write handler (root opens it all the same). */
            (*seen)++;
            int fd = open(path, O_WRONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
            if (fd >= 0) {
                int counts = kernel_fs(fd);
                close(fd);
                if (counts) {
                    if (!*count)
                        snprintf(first, flen, "%s", path);
                    (*count)++;
                }
            }
        }
    }
    closedir(dir);
    return 0;
}

static int writable_below(const char *root, int depth, char *d, size_t n)
{
    int count = 0, seen = 0;
    char first[1024] = "";
    if (walk_writable(root, depth, &count, first, sizeof first, &seen) != 0)
        return failed(d, n, root);
    if (count) {
        snprintf(d, n, "%d of %d writable files below %s open for writing, e.g. %s", count, seen,
                 root, first);
        return 1;
    }
    snprintf(d, n, "none of %d writable files below %s opens for writing", seen, root);
    return 0;
}

static int p_cgroup_files(char *d, size_t n) { return writable_below("/sys/fs/cgroup", 6, d, n); }
static int p_proc_sys_files(char *d, size_t n) { return writable_below("/proc/sys", 8, d, n); }
static int p_sys_files(char *d, size_t n) { return writable_below("/sys/kernel", 3, d, n); }
static int p_proc_files(char *d, size_t n) { return writable_below("/proc", 6, d, n); }

/* Every masked path (runc's, containerd's and podman's list) is absent, empty or unreadable. */
static int p_masked(char *d, size_t n)
{
    const char *paths[] = {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                           "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                           "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
                           "/sys/devices/virtual/powercap", "/sys/fs/selinux", "/sys/dev/block",
                           NULL};
    int present = 0;
    for (int i = 0; paths[i]; i++) {
        struct stat st;
        if (stat(paths[i], &st) != 0)
            continue;
        present++;
        if (S_ISDIR(st.st_mode)) {
            DIR *dir = opendir(paths[i]);
            struct dirent *e;
            while (dir && (e = readdir(dir))) {
                if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                    snprintf(d, n, "%s lists %s", paths[i], e->d_name);
                    closedir(dir);
                    return 1;
                }
            }
            if (dir)
                closedir(dir);
        } else if (read_hidden(paths[i], d, n)) {
            return 1;
        }
    }
    snprintf(d, n, "all %d masked paths present here are empty", present);
    return 0;
}

/* A new cgroup below the container's own: on a read-only mount it is refused. */
static int p_cgroup_mkdir(char *d, size_t n)
{
    DIR *dir = opendir("/sys/fs/cgroup");
    if (!dir)
        return failed(d, n, "opendir /sys/fs/cgroup");
    char paths[32][300];
    int count = 0;
    paths[count++][0] = 0;
    struct dirent *e;
    while ((e = readdir(dir)) && count < 32)
        if (e->d_name[0] != '.')
            snprintf(paths[count++], sizeof paths[0], "/%s", e->d_name);
    closedir(dir);
    int tried = 0;
    for (int i = 0; i < count; i++) {
        char parent[400], path[500];
        snprintf(parent, sizeof parent, "/sys/fs/cgroup%.256s", paths[i]);
        int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            continue;
        int cg = kernel_fs(fd);
        close(fd);
        if (!cg)
            continue;
        tried++;
        snprintf(path, sizeof path, "%s/berth-probe", parent);
        if (mkdir(path, 0755) == 0) {
            rmdir(path);
            snprintf(d, n, "made the cgroup %s", path);
            return 1;
        }
    }
    snprintf(d, n, "mkdir refused in all %d cgroup hierarchies", tried);
    return tried ? 0 : 1;
}

static int p_mknod_block(char *d, size_t n)
{
    if (mknod("/tmp/.probe-disk", S_IFBLK | 0600, makedev(254, 0)) != 0)
        return failed(d, n, "mknod block 254:0");
    unlink("/tmp/.probe-disk");
    return worked(d, n, "made a block device node");
}

static int p_mknod_mem(char *d, size_t n)
{
    if (mknod("/tmp/.probe-mem", S_IFCHR | 0600, makedev(1, 1)) != 0)
        return failed(d, n, "mknod char 1:1 (/dev/mem)");
    unlink("/tmp/.probe-mem");
    return worked(d, n, "made a /dev/mem node");
}

/* /dev holds no block device and none of the host's memory or disk nodes. */
static int p_dev_nodes(char *d, size_t n)
{
    const char *bad[] = {"/dev/mem", "/dev/kmem", "/dev/port", "/dev/sda", "/dev/vda",
                         "/dev/nvme0n1", "/dev/kmsg", "/dev/fuse", NULL};
    for (int i = 0; bad[i]; i++) {
        if (access(bad[i], F_OK) == 0) {
            snprintf(d, n, "%s exists", bad[i]);
            return 1;
        }
    }
    DIR *dir = opendir("/dev");
    if (!dir)
        return failed(d, n, "opendir /dev");
    struct dirent *e;
    while ((e = readdir(dir))) {
        char path[300];
        struct stat st;
        snprintf(path, sizeof path, "/dev/%s", e->d_name);
        if (lstat(path, &st) == 0 && S_ISBLK(st.st_mode)) {
            snprintf(d, n, "block device %s", path);
            closedir(dir);
            return 1;
        }
    }
    closedir(dir);
    snprintf(d, n, "no block device or host memory node in /dev");
    return 0;
}

/* Device nodes the image ships (unpacked as the image says) must not open. */
static int p_image_devices(char *d, size_t n)
{
    if (!ndevices) {
        snprintf(d, n, "no --devices given");
        return 1;
    }
    size_t used = 0;
    for (int i = 0; i < ndevices; i++) {
        int fd = open(devices[i], O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd >= 0) {
            char c;
            ssize_t r = read(fd, &c, 1);
            close(fd);
            snprintf(d, n, "opened %s (read %zd)", devices[i], r);
            return 1;
        }
        used += snprintf(d + used, used < n ? n - used : 0, "%sopen %s: %s", i ? "; " : "",
                         devices[i], strerror(errno));
    }
    return 0;
}

/* ------------------------------------------------------------------ positive controls */

/* What must keep working, so that the denials above are the confinement's doing. */
static int p_ping_socket(char *d, size_t n)
{
    int fd = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
    if (fd < 0)
        return failed(d, n, "socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)");
    return worked(d, n, "opened an ICMP echo socket");
}

static int p_proc_version(char *d, size_t n) { return read_hidden("/proc/version", d, n); }

static int p_write_tmp(char *d, size_t n)
{
    int fd = open("/tmp/.probe-file", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, "x", 1) != 1)
        return failed(d, n, "write /tmp/.probe-file");
    close(fd);
    return worked(d, n, "wrote /tmp/.probe-file");
}

static const struct {
    const char *name;
    probe_fn fn;
} probes[] = {
    {"mount-tmpfs", p_mount_tmpfs},
    {"mount-proc", p_mount_proc},
    {"mount-bind", p_mount_bind},
    {"remount-proc-sys", p_remount_proc_sys},
    {"umount-mask", p_umount_mask},
    {"fsopen", p_fsopen},
    {"unshare-mount", p_unshare_mount},
    {"unshare-net", p_unshare_net},
    {"unshare-pid", p_unshare_pid},
    {"unshare-cgroup", p_unshare_cgroup},
    {"unshare-user", p_unshare_user},
    {"userns-mount", p_userns_mount},
    {"userns-unmask", p_userns_unmask},
    {"chroot-escape", p_chroot_escape},
    {"pivot-root", p_pivot_root},
    {"processes", p_processes},
    {"ptrace-foreign", p_ptrace_foreign},
    {"kill-foreign", p_kill_foreign},
    {"root-foreign", p_root_foreign},
    {"keyctl", p_keyctl},
    {"add-key", p_add_key},
    {"bpf", p_bpf},
    {"perf-event", p_perf_event},
    {"init-module", p_init_module},
    {"finit-module", p_finit_module},
    {"syslog", p_syslog},
    {"iopl", p_iopl},
    {"settime", p_settime},
    {"reboot", p_reboot},
    {"kexec", p_kexec},
    {"swapon", p_swapon},
    {"acct", p_acct},
    {"sethostname", p_sethostname},
    {"open-by-handle", p_open_by_handle},
    {"raw-socket", p_raw_socket},
    {"packet-socket", p_packet_socket},
    {"read-kcore", p_kcore},
    {"read-proc-keys", p_proc_keys},
    {"read-timer-list", p_timer_list},
    {"read-sched-debug", p_sched_debug},
    {"read-kmsg", p_kmsg},
    {"read-sys-firmware", p_sys_firmware},
    {"write-sysrq-trigger", p_sysrq},
    {"write-core-pattern", p_core_pattern},
    {"write-vm-sysctl", p_vm_sysctl},
    {"write-net-sysctl", p_net_sysctl},
    {"write-uevent-helper", p_uevent_helper},
    {"writable-cgroupfs", p_cgroup_files},
    {"writable-proc-sys", p_proc_sys_files},
    {"writable-sys-kernel", p_sys_files},
    {"writable-proc", p_proc_files},
    {"read-masked", p_masked},
    {"mkdir-cgroup", p_cgroup_mkdir},
    {"mknod-block", p_mknod_block},
    {"mknod-mem", p_mknod_mem},
    {"dev-nodes", p_dev_nodes},
    {"image-devices", p_image_devices},
    {"ping-socket", p_ping_socket},
    {"read-proc-version", p_proc_version},
    {"write-tmp", p_write_tmp},
};

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        char *save = NULL, *item;
        if (!strcmp(argv[i], "--foreign-pids") && i + 1 < argc) {
            for (item = strtok_r(argv[++i], ",", &save); item && nforeign < MAX_ARGS;
                 item = strtok_r(NULL, ",", &save))
                foreign[nforeign++] = atoi(item);
        } else if (!strcmp(argv[i], "--devices") && i + 1 < argc) {
            for (item = strtok_r(argv[++i], ",", &save); item && ndevices < MAX_ARGS;
                 item = strtok_r(NULL, ",", &save))
                devices[ndevices++] = item;
        } else if (!strcmp(argv[i], "--host-path") && i + 1 < argc) {
            host_path = argv[++i];
        } else {
            fprintf(stderr,
                    "usage: %s [--foreign-pids PID,...] [--host-path PATH] [--devices PATH,...]\n",
                    argv[0]);
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    mkdir(MNT, 0700);
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        int fds[2];
        if (pipe(fds) != 0) {
            perror("pipe");
            return 1;
        }
        pid_t child = fork();
        if (child < 0) {
            perror("fork");
            return 1;
        }
        if (child == 0) {
            char detail[512] = "";
            close(fds[0]);
            alarm(10);
            int verdict = probes[i].fn(detail, sizeof detail);
            dprintf(fds[1], "%s\t%s", verdict ? "allowed" : "denied", detail);
            _exit(0);
        }
        close(fds[1]);
        char out[600] = "";
        size_t got = 0;
        ssize_t r;
        while (got < sizeof out - 1 && (r = read(fds[0], out + got, sizeof out - 1 - got)) > 0)
            got += r;
        out[got] = 0;
        close(fds[0]);
        int status;
        waitpid(child, &status, 0);
        char *tab = strchr(out, '\t');
        if (!tab)
            printf("PROBE %s error the probe died (status %d)\n", probes[i].name, status);
        else {
            *tab = 0;
            for (char *c = tab + 1; *c; c++)
                if (*c == '\n')
                    *c = ' ';
            printf("PROBE %s %s %s\n", probes[i].name, out, tab + 1);
        }
    }
    printf("PROBES DONE\n");
    return 0;
}
