/* Files: whole reads, atomic writes, directories, memory maps.
 *
 * Every write that replaces a file goes to a temporary name in the same
 * directory, is flushed with fsync, and is renamed over the target; the
 * directory is then fsync'd. A crash at any moment leaves either the old
 * file or the new one, never a torn mix. */
#define _GNU_SOURCE
#include "soju/base.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int soju_read_file(const char *path, char **out, size_t *len, soju_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return soju_errf(err, SOJU_EIO, "%s: cannot open: %s", path, strerror(errno));
    soju_buf b = {0};
    char chunk[1 << 16];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) soju_buf_append(&b, chunk, n);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        soju_buf_free(&b);
        return soju_errf(err, SOJU_EIO, "%s: read error", path);
    }
    if (!b.data) soju_buf_reserve(&b, 0), b.data[0] = 0;
    *out = b.data;
    if (len) *len = b.len;
    return SOJU_OK;
}

static char *dir_of(const char *path) {
    char *tmp = soju_strdup(path);
    char *d = soju_strdup(dirname(tmp));
    free(tmp);
    return d;
}

void soju_fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int soju_afile_open(soju_afile *f, const char *path, soju_err *err) {
    memset(f, 0, sizeof *f);
    soju_buf tmp = {0};
    soju_buf_printf(&tmp, "%s.tmp.%ld", path, (long)getpid());
    f->fp = fopen(tmp.data, "wb");
    if (!f->fp) {
        int e = errno;
        soju_buf_free(&tmp);
        return soju_errf(err, SOJU_EIO, "%s: cannot create: %s", path, strerror(e));
    }
    f->path = soju_strdup(path);
    f->tmp_path = tmp.data;
    return SOJU_OK;
}

void soju_afile_abort(soju_afile *f) {
    if (f->fp) fclose(f->fp);
    if (f->tmp_path) unlink(f->tmp_path);
    free(f->path);
    free(f->tmp_path);
    memset(f, 0, sizeof *f);
}

int soju_afile_commit(soju_afile *f, soju_err *err) {
    int rc = SOJU_OK;
    if (fflush(f->fp) != 0 || fsync(fileno(f->fp)) != 0)
        rc = soju_errf(err, SOJU_EIO, "%s: write failed: %s", f->path, strerror(errno));
    if (fclose(f->fp) != 0 && rc == SOJU_OK)
        rc = soju_errf(err, SOJU_EIO, "%s: close failed: %s", f->path, strerror(errno));
    f->fp = NULL;
    if (rc == SOJU_OK && rename(f->tmp_path, f->path) != 0)
        rc = soju_errf(err, SOJU_EIO, "%s: rename failed: %s", f->path, strerror(errno));
    if (rc == SOJU_OK) {
        char *d = dir_of(f->path);
        soju_fsync_dir(d);
        free(d);
    }
    if (rc != SOJU_OK) unlink(f->tmp_path);
    free(f->path);
    free(f->tmp_path);
    f->path = f->tmp_path = NULL;
    return rc;
}

int soju_write_file_atomic(const char *path, const void *data, size_t len, soju_err *err) {
    soju_afile f;
    int rc = soju_afile_open(&f, path, err);
    if (rc) return rc;
    if (len && fwrite(data, 1, len, f.fp) != len) {
        soju_errf(err, SOJU_EIO, "%s: write failed: %s", path, strerror(errno));
        soju_afile_abort(&f);
        return SOJU_EIO;
    }
    return soju_afile_commit(&f, err);
}

int soju_mkdirs(const char *path, soju_err *err) {
    char *p = soju_strdup(path);
    size_t n = strlen(p);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] == '/' || p[i] == 0) {
            char c = p[i];
            p[i] = 0;
            if (mkdir(p, 0755) != 0 && errno != EEXIST) {
                int e = errno;
                soju_errf(err, SOJU_EIO, "%s: cannot create directory: %s", p, strerror(e));
                free(p);
                return SOJU_EIO;
            }
            p[i] = c;
        }
    }
    free(p);
    if (!soju_is_dir(path)) return soju_errf(err, SOJU_EIO, "%s: exists and is not a directory", path);
    return SOJU_OK;
}

int soju_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int soju_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *soju_path_join(const char *a, const char *b) {
    soju_buf out = {0};
    soju_buf_puts(&out, a);
    if (out.len && out.data[out.len - 1] != '/') soju_buf_putc(&out, '/');
    soju_buf_puts(&out, b);
    return out.data;
}

int soju_rmtree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode)) return unlink(path);
    DIR *d = opendir(path);
    if (!d) return -1;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *child = soju_path_join(path, e->d_name);
        if (soju_rmtree(child) != 0) rc = -1;
        free(child);
    }
    closedir(d);
    if (rmdir(path) != 0) rc = -1;
    return rc;
}

int soju_mmap_open(soju_mmap *m, const char *path, soju_err *err) {
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return soju_errf(err, SOJU_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return soju_errf(err, SOJU_EIO, "%s: cannot stat: %s", path, strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return soju_errf(err, SOJU_EIO, "%s: is a directory", path);
    }
    m->len = (size_t)st.st_size;
    if (m->len == 0) {
        close(fd);
        m->data = NULL;
        return SOJU_OK;
    }
    void *p = mmap(NULL, m->len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return soju_errf(err, SOJU_EIO, "%s: cannot map: %s", path, strerror(errno));
    m->data = p;
    return SOJU_OK;
}

void soju_mmap_close(soju_mmap *m) {
    if (m->data) munmap((void *)m->data, m->len);
    m->data = NULL;
    m->len = 0;
}
