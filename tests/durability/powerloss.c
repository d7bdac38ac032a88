/*
 * powerloss.c — a fault-injecting file-system shim that simulates a power loss.
 *
 * Loaded with LD_PRELOAD into a real process (the collector), it records, for every file and
 * directory under EVALFORGE_POWERLOSS_ROOT, the state the process has made *durable*:
 *
 *   - a file's content is durable as of its last successful fsync/fdatasync (or a write to an
 *     O_SYNC/O_DSYNC descriptor); what was written after that lives only in the page cache;
 *   - a directory's entries (created, renamed, unlinked names, new subdirectories) are durable as
 *     of the last successful fsync of that directory; a new file whose directory was never synced
 *     after its creation vanishes, an unsynced rename is undone, an unsynced unlink reappears;
 *   - syncfs(2)/sync(2) make everything durable; sync_file_range(2) makes nothing durable (it
 *     neither syncs metadata nor flushes the disk cache), nor does closing a file.
 *
 * Faults: EVALFORGE_POWERLOSS_FAIL_SYNCS=dir:N (or file:N) makes every fsync/fdatasync of a
 * directory (or a file) below the root after the first N fail with EIO, syncing and recording
 * nothing — a disk that stopped taking that kind of write.
 *
 * This is the POSIX contract (ext4, XFS and btrfs each give more in some cases; a program must
 * not rely on it). The durable state is kept under EVALFORGE_POWERLOSS_STATE (outside the root)
 * and written before the intercepted sync returns, so it survives kill -9 of the process:
 *
 *   STATE/data/<gen>    durable content of file generation <gen> (absent: never synced → empty)
 *   STATE/dirs/<hex>    durable listing of the directory whose path below the root is hex-encoded
 *                       ("_" is the root): lines "f <gen> <name>" and "d <name>"
 *   STATE/log           one line per recorded sync (for the test's evidence)
 *
 * A generation is one file's life: a new one starts when open(O_CREAT) creates the file, so an
 * inode number reused after an unlink never inherits the old file's durable content.
 *
 * Built a second time with -DPOWERLOSS_TOOL it is the restore tool:
 *   powerloss restore STATE ROOT   empties ROOT and rebuilds it to exactly its durable state
 * — the disk as a machine would find it after the power came back. Run it after SIGKILL.
 *
 * Nothing here is used by the product; tests/durability/README.md and the Swift test
 * Tests/CollectorTests/PowerLossTests.swift describe how it is driven.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static char state_dir[PATH_MAX / 2];

/* The name of the listing file of the directory `rel` (relative to the root, "" for the root). */
static void listing_name(const char *rel, char *out, size_t cap) {
    static const char hex[] = "0123456789abcdef";
    size_t n = (size_t)snprintf(out, cap, "%s/dirs/_", state_dir);
    for (const unsigned char *p = (const unsigned char *)rel; *p && n + 3 < cap; p++) {
        out[n++] = hex[*p >> 4];
        out[n++] = hex[*p & 15];
    }
    out[n] = 0;
}

#ifndef POWERLOSS_TOOL

/* ---------------------------------------------------------------- the LD_PRELOAD shim */

static int (*real_open)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_syncfs)(int);
static void (*real_sync)(void);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static char root[PATH_MAX];
static size_t root_len;
static int active;
/* EVALFORGE_POWERLOSS_FAIL_SYNCS: which syncs fail (S_IFDIR or S_IFREG, 0 none) after how many. */
static mode_t fail_kind;
static long fail_after, syncs_of_kind;

struct generation { dev_t dev; ino_t ino; unsigned long gen; };
static struct generation *gens;
static size_t ngens, capgens;
static unsigned long next_gen = 1;

static void resolve(void) {
    real_open = dlsym(RTLD_NEXT, "open");
    real_openat = dlsym(RTLD_NEXT, "openat");
    real_fsync = dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
    real_syncfs = dlsym(RTLD_NEXT, "syncfs");
    real_sync = dlsym(RTLD_NEXT, "sync");
    real_write = dlsym(RTLD_NEXT, "write");
    real_pwrite = dlsym(RTLD_NEXT, "pwrite");
    real_writev = dlsym(RTLD_NEXT, "writev");
    real_pwritev = dlsym(RTLD_NEXT, "pwritev");
}

static void die(const char *what) {
    /* The shim's own bookkeeping failed: the test's evidence would be wrong, so stop loudly. */
    char msg[PATH_MAX + 128];
    int n = snprintf(msg, sizeof msg, "powerloss shim: %s: %s\n", what, strerror(errno));
    if (n > 0) (void)!real_write(2, msg, (size_t)n);
    _exit(97);
}

static void write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = real_write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) die("write to the state directory");
        p += n;
        len -= (size_t)n;
    }
}

/* Writes `len` bytes to `path` atomically (a kill -9 of the process leaves the old or the new). */
static void put_file(const char *path, const void *buf, size_t len) {
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = real_open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) die(tmp);
    write_all(fd, buf, len);
    close(fd);
    if (rename(tmp, path) != 0) die(path);
}

static void log_line(const char *fmt, ...) {
    char path[PATH_MAX + 8], line[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/log", state_dir);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    int fd = real_open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) die(path);
    if (n > 0) write_all(fd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    close(fd);
}

static struct generation *find_gen(dev_t dev, ino_t ino) {
    for (size_t i = 0; i < ngens; i++)
        if (gens[i].dev == dev && gens[i].ino == ino) return &gens[i];
    return NULL;
}

/* Starts a new generation for (dev, ino): a new file, nothing of it durable yet. */
static unsigned long new_gen(dev_t dev, ino_t ino) {
    struct generation *g = find_gen(dev, ino);
    if (!g) {
        if (ngens == capgens) {
            capgens = capgens ? capgens * 2 : 256;
            gens = realloc(gens, capgens * sizeof *gens);
            if (!gens) die("out of memory");
        }
        g = &gens[ngens++];
        g->dev = dev;
        g->ino = ino;
    }
    g->gen = next_gen++;
    return g->gen;
}

static unsigned long gen_of(dev_t dev, ino_t ino) {
    struct generation *g = find_gen(dev, ino);
    return g ? g->gen : new_gen(dev, ino);
}

/* The path of `fd` below the root ("" for the root itself) in `rel`, or 0 when it is elsewhere. */
static int relative_path(int fd, char *rel, size_t cap) {
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return 0;
    path[n] = 0;
    if (strncmp(path, root, root_len) != 0 || (path[root_len] != 0 && path[root_len] != '/')) return 0;
    snprintf(rel, cap, "%s", path[root_len] == '/' ? path + root_len + 1 : "");
    return 1;
}

/* Records the current content of the file open as `fd` as the durable content of `gen`. */
static void record_file(int fd, unsigned long gen, const char *rel) {
    char link[64], dst[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    int in = real_open(link, O_RDONLY | O_CLOEXEC);
    if (in < 0) die("reopen a synced file");
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    if (!buf) die("out of memory");
    for (;;) {
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            if (!buf) die("out of memory");
        }
        ssize_t n = pread(in, buf + len, cap - len, (off_t)len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die("read a synced file");
        if (n == 0) break;
        len += (size_t)n;
    }
    close(in);
    snprintf(dst, sizeof dst, "%s/data/%lu", state_dir, gen);
    put_file(dst, buf, len);
    free(buf);
    log_line("file %lu %zu %s\n", gen, len, rel);
}

/* Records the current entries of the directory open as `fd` as its durable listing. */
static void record_directory(int fd, const char *rel) {
    int dfd = real_openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) die("reopen a synced directory");
    DIR *d = fdopendir(dfd);
    if (!d) die("read a synced directory");
    size_t cap = 4096, len = 0, entries = 0;
    char *out = malloc(cap);
    if (!out) die("out of memory");
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || strchr(e->d_name, '\n')) continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        char line[NAME_MAX + 64];
        int n;
        if (S_ISREG(st.st_mode)) n = snprintf(line, sizeof line, "f %lu %s\n", gen_of(st.st_dev, st.st_ino), e->d_name);
        else if (S_ISDIR(st.st_mode)) n = snprintf(line, sizeof line, "d %s\n", e->d_name);
        else continue;
        while (len + (size_t)n + 1 > cap) {
            cap *= 2;
            out = realloc(out, cap);
            if (!out) die("out of memory");
        }
        memcpy(out + len, line, (size_t)n);
        len += (size_t)n;
        entries++;
    }
    closedir(d);
    char path[PATH_MAX];
    listing_name(rel, path, sizeof path);
    put_file(path, out, len);
    free(out);
    log_line("dir %zu /%s\n", entries, rel);
}

/* After a successful sync of `fd`: record what it made durable, if it is below the root. */
static void synced(int fd) {
    if (!active) return;
    struct stat st;
    if (fstat(fd, &st) != 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) return;
    char rel[PATH_MAX];
    pthread_mutex_lock(&lock);
    int inside = relative_path(fd, rel, sizeof rel);
    struct generation *g = S_ISREG(st.st_mode) ? find_gen(st.st_dev, st.st_ino) : NULL;
    if (S_ISDIR(st.st_mode)) {
        if (inside) record_directory(fd, rel);
    } else if (g || inside) {
        /* A known file is recorded even when unlinked: an unsynced unlink brings it back. */
        record_file(fd, g ? g->gen : new_gen(st.st_dev, st.st_ino), inside ? rel : "(unlinked)");
    }
    pthread_mutex_unlock(&lock);
}

/* Records the whole tree below `fd` (syncfs, sync, and the state found at start-up). */
static void record_tree(int fd, const char *rel) {
    record_directory(fd, rel);
    int dfd = real_openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) die("reopen a directory");
    DIR *d = fdopendir(dfd);
    if (!d) die("read a directory");
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || strchr(e->d_name, '\n')) continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) continue;
        int child = real_openat(dirfd(d), e->d_name, (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
        if (child < 0) continue;
        char sub[PATH_MAX];
        snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        if (S_ISDIR(st.st_mode)) record_tree(child, sub);
        else record_file(child, gen_of(st.st_dev, st.st_ino), sub);
        close(child);
    }
    closedir(d);
}

static void record_everything(void) {
    int fd = real_open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) die(root);
    record_tree(fd, "");
    close(fd);
}

__attribute__((constructor)) static void start(void) {
    pthread_once(&once, resolve);
    const char *r = getenv("EVALFORGE_POWERLOSS_ROOT"), *s = getenv("EVALFORGE_POWERLOSS_STATE");
    if (!r || !s) return;
    if (!realpath(r, root)) die("EVALFORGE_POWERLOSS_ROOT (it must exist)");
    root_len = strlen(root);
    snprintf(state_dir, sizeof state_dir, "%s", s);
    /* Only this process records: a child would take the page cache's state as durable. */
    unsetenv("EVALFORGE_POWERLOSS_ROOT");
    unsetenv("EVALFORGE_POWERLOSS_STATE");
    const char *f = getenv("EVALFORGE_POWERLOSS_FAIL_SYNCS");
    if (f && *f) {
        if (!strncmp(f, "dir:", 4)) fail_kind = S_IFDIR;
        else if (!strncmp(f, "file:", 5)) fail_kind = S_IFREG;
        else { errno = EINVAL; die("EVALFORGE_POWERLOSS_FAIL_SYNCS must be dir:N or file:N"); }
        fail_after = atol(strchr(f, ':') + 1);
        unsetenv("EVALFORGE_POWERLOSS_FAIL_SYNCS");
    }
    char sub[PATH_MAX + 8];
    snprintf(sub, sizeof sub, "%s/data", state_dir);
    if (mkdir(sub, 0755) != 0 && errno != EEXIST) die(sub);
    snprintf(sub, sizeof sub, "%s/dirs", state_dir);
    if (mkdir(sub, 0755) != 0 && errno != EEXIST) die(sub);
    /* What is on disk when the process starts counts as durable (the test starts from a restored
     * or empty directory). */
    pthread_mutex_lock(&lock);
    record_everything();
    pthread_mutex_unlock(&lock);
    log_line("start %s\n", root);
    active = 1;
}

/* After open(O_CREAT) created a file below the root: a new generation (nothing durable yet). */
static void opened(int fd, int created) {
    if (!active || fd < 0 || !created) return;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return;
    char rel[PATH_MAX];
    pthread_mutex_lock(&lock);
    if (relative_path(fd, rel, sizeof rel)) new_gen(st.st_dev, st.st_ino);
    pthread_mutex_unlock(&lock);
}

static int will_create(int dirfd, const char *path, int flags) {
    struct stat st;
    return (flags & O_CREAT) && fstatat(dirfd, path, &st, 0) != 0 && errno == ENOENT;
}

int open(const char *path, int flags, ...) {
    pthread_once(&once, resolve);
    mode_t mode = 0;
    if (flags & (O_CREAT | __O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    int created = active && will_create(AT_FDCWD, path, flags);
    int fd = real_open(path, flags, mode);
    int saved = errno;
    opened(fd, created);
    errno = saved;
    return fd;
}

int openat(int dirfd, const char *path, int flags, ...) {
    pthread_once(&once, resolve);
    mode_t mode = 0;
    if (flags & (O_CREAT | __O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    int created = active && will_create(dirfd, path, flags);
    int fd = real_openat(dirfd, path, flags, mode);
    int saved = errno;
    opened(fd, created);
    errno = saved;
    return fd;
}

int open64(const char *path, int flags, ...) __attribute__((alias("open")));
int openat64(int dirfd, const char *path, int flags, ...) __attribute__((alias("openat")));
int __open_2(const char *path, int flags) { return open(path, flags); }
int __open64_2(const char *path, int flags) { return open(path, flags); }
int creat(const char *path, mode_t mode) { return open(path, O_WRONLY | O_CREAT | O_TRUNC, mode); }
int creat64(const char *path, mode_t mode) { return open(path, O_WRONLY | O_CREAT | O_TRUNC, mode); }

/* Whether this sync of `fd` is one the fault injection fails (counted per kind, below the root). */
static int injected_failure(int fd) {
    if (!active || !fail_kind) return 0;
    struct stat st;
    if (fstat(fd, &st) != 0 || (st.st_mode & S_IFMT) != fail_kind) return 0;
    char rel[PATH_MAX];
    pthread_mutex_lock(&lock);
    int fail = relative_path(fd, rel, sizeof rel) && ++syncs_of_kind > fail_after;
    if (fail) log_line("failed %s /%s\n", fail_kind == S_IFDIR ? "dir" : "file", rel);
    pthread_mutex_unlock(&lock);
    return fail;
}

int fsync(int fd) {
    pthread_once(&once, resolve);
    if (injected_failure(fd)) { errno = EIO; return -1; }
    int r = real_fsync(fd);
    if (r == 0) synced(fd);
    return r;
}

int fdatasync(int fd) {
    pthread_once(&once, resolve);
    if (injected_failure(fd)) { errno = EIO; return -1; }
    int r = real_fdatasync(fd);
    if (r == 0) synced(fd);
    return r;
}

int syncfs(int fd) {
    pthread_once(&once, resolve);
    int r = real_syncfs(fd);
    if (r == 0 && active) {
        pthread_mutex_lock(&lock);
        record_everything();
        pthread_mutex_unlock(&lock);
    }
    return r;
}

void sync(void) {
    pthread_once(&once, resolve);
    real_sync();
    if (active) {
        pthread_mutex_lock(&lock);
        record_everything();
        pthread_mutex_unlock(&lock);
    }
}

/* A write to an O_SYNC/O_DSYNC descriptor is durable when it returns. */
static void maybe_synchronous(int fd, ssize_t n) {
    if (n <= 0 || !active) return;
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && (fl & (O_SYNC | O_DSYNC))) synced(fd);
}

ssize_t write(int fd, const void *buf, size_t len) {
    pthread_once(&once, resolve);
    ssize_t n = real_write(fd, buf, len);
    int saved = errno;
    maybe_synchronous(fd, n);
    errno = saved;
    return n;
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off) {
    pthread_once(&once, resolve);
    ssize_t n = real_pwrite(fd, buf, len, off);
    int saved = errno;
    maybe_synchronous(fd, n);
    errno = saved;
    return n;
}

ssize_t writev(int fd, const struct iovec *iov, int cnt) {
    pthread_once(&once, resolve);
    ssize_t n = real_writev(fd, iov, cnt);
    int saved = errno;
    maybe_synchronous(fd, n);
    errno = saved;
    return n;
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off) {
    pthread_once(&once, resolve);
    ssize_t n = real_pwritev(fd, iov, cnt, off);
    int saved = errno;
    maybe_synchronous(fd, n);
    errno = saved;
    return n;
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off_t off) __attribute__((alias("pwrite")));
ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off_t off) __attribute__((alias("pwritev")));

#else

/* ---------------------------------------------------------------- the restore tool */

static long files, bytes, dirs;

static int remove_entry(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : -1;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) return -1;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char sub[PATH_MAX];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            if (remove_entry(sub) != 0) { closedir(d); return -1; }
        }
        closedir(d);
        return rmdir(path);
    }
    return unlink(path);
}

static int copy_file(const char *from, const char *to) {
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (out < 0) return -1;
    int in = open(from, O_RDONLY);
    if (in >= 0) {  /* absent: never synced, so empty */
        char buf[1 << 16];
        ssize_t n;
        while ((n = read(in, buf, sizeof buf)) > 0) {
            if (write(out, buf, (size_t)n) != n) { close(in); close(out); return -1; }
            bytes += n;
        }
        close(in);
        if (n < 0) { close(out); return -1; }
    }
    files++;
    return close(out);
}

/* Rebuilds directory `path` (below the root as `rel`) from its durable listing. */
static int rebuild(const char *path, const char *rel) {
    char listing[PATH_MAX];
    listing_name(rel, listing, sizeof listing);
    FILE *f = fopen(listing, "r");
    if (!f) return errno == ENOENT ? 0 : -1;  /* never synced: an empty directory */
    char line[NAME_MAX + 64];
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char target[PATH_MAX], sub[PATH_MAX];
        if (line[0] == 'f' && line[1] == ' ') {
            char *name = strchr(line + 2, ' ');
            if (!name) continue;
            *name++ = 0;
            char data[PATH_MAX];
            snprintf(data, sizeof data, "%s/data/%s", state_dir, line + 2);
            snprintf(target, sizeof target, "%s/%s", path, name);
            rc = copy_file(data, target);
        } else if (line[0] == 'd' && line[1] == ' ') {
            snprintf(target, sizeof target, "%s/%s", path, line + 2);
            snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", line + 2);
            dirs++;
            rc = mkdir(target, 0755) != 0 ? -1 : rebuild(target, sub);
        }
    }
    fclose(f);
    return rc;
}

int main(int argc, char **argv) {
    if (argc != 4 || strcmp(argv[1], "restore") != 0) {
        fprintf(stderr, "usage: %s restore STATE ROOT\n", argv[0]);
        return 2;
    }
    snprintf(state_dir, sizeof state_dir, "%s", argv[2]);
    const char *root = argv[3];
    char probe[PATH_MAX];
    listing_name("", probe, sizeof probe);
    if (access(probe, R_OK) != 0) {
        fprintf(stderr, "powerloss: %s holds no recorded state (was the shim loaded?)\n", argv[2]);
        return 1;
    }
    DIR *d = opendir(root);
    if (!d) { perror(root); return 1; }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char sub[PATH_MAX];
        snprintf(sub, sizeof sub, "%s/%s", root, e->d_name);
        if (remove_entry(sub) != 0) { perror(sub); closedir(d); return 1; }
    }
    closedir(d);
    if (rebuild(root, "") != 0) { perror("powerloss: restore"); return 1; }
    printf("{\"restored_files\":%ld,\"restored_bytes\":%ld,\"restored_dirs\":%ld}\n", files, bytes, dirs);
    return 0;
}

#endif
