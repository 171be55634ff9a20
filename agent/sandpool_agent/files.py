"""The data directory (/mnt/data), confined.

Every path is walked one segment at a time from a directory fd with O_NOFOLLOW, so no symlink is
ever followed, wherever session code planted it, and `..`/absolute paths are refused before any
system call. Uploads go to a hidden temp file in the target directory and are renamed into place.
"""

import datetime
import errno
import os
import secrets
import shutil
import stat as stat_mod

from memory_room import MemoryRoom

TEMP_PREFIX = ".sandpool-upload-"
MAX_PATH_BYTES = 4096
MAX_SEGMENT_BYTES = 255
MAX_LIST_ENTRIES = 10000
MAX_LIST_DEPTH = 64
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class FileOpError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def split_path(path, allow_root=False):
    """Validated segments of a data-dir-relative path."""
    if not isinstance(path, str):
        raise FileOpError("BAD_REQUEST", "path must be a string")
    if path == "":
        if allow_root:
            return []
        raise FileOpError("INVALID_PATH", "a file path is required")
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        raise FileOpError("INVALID_PATH", "path is not valid UTF-8") from None
    if len(encoded) > MAX_PATH_BYTES:
        raise FileOpError("INVALID_PATH", "path is longer than %d bytes" % MAX_PATH_BYTES)
    if path.startswith("/"):
        raise FileOpError("INVALID_PATH", "absolute paths are not allowed; paths are relative to the data directory")
    parts = path.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise FileOpError("INVALID_PATH", "path segments must not be empty, '.' or '..'")
        if "\0" in part or len(part.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise FileOpError("INVALID_PATH", "invalid path segment")
    return parts


def _iso(ts):
    when = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def file_info(parts, st):
    if stat_mod.S_ISREG(st.st_mode):
        kind = "file"
    elif stat_mod.S_ISDIR(st.st_mode):
        kind = "directory"
    else:
        raise FileOpError("INVALID_PATH", "not a regular file or directory")
    return {
        "name": parts[-1] if parts else "",
        "path": "/".join(parts),
        "type": kind,
        "sizeInBytes": st.st_size,
        "lastModifiedAt": _iso(st.st_mtime),
    }


def _os_error(error, what):
    if error.errno == errno.ENOENT:
        return FileOpError("FILE_NOT_FOUND", "%s does not exist" % what)
    if error.errno in (errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.EMLINK):
        return FileOpError("INVALID_PATH", "%s is a symbolic link or has the wrong type" % what)
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return FileOpError("NO_SPACE", "no space left in the data directory")
    if error.errno == errno.ENAMETOOLONG:
        return FileOpError("INVALID_PATH", "%s: name too long" % what)
    return FileOpError("INTERNAL", "%s: %s" % (what, os.strerror(error.errno or 0)))


class DataDir:
    def __init__(self, root, memory_room=None):
        os.makedirs(root, exist_ok=True)
        self.root = os.path.realpath(root)
        self.memory_room = memory_room if memory_room is not None else MemoryRoom(self.root)

    def _open_dir(self, parts, create=False):
        """fd of the directory `parts`, walked without following any symlink."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for index, part in enumerate(parts):
                shown = "/".join(parts[: index + 1])
                try:
                    child = os.open(part, DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise FileOpError("FILE_NOT_FOUND", "directory %s does not exist" % shown) from None
                    try:
                        os.mkdir(part, 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass
                    except OSError as error:
                        raise _os_error(error, shown) from None
                    try:
                        child = os.open(part, DIR_FLAGS, dir_fd=fd)
                    except OSError as error:
                        raise _os_error(error, shown) from None
                except OSError as error:
                    raise _os_error(error, shown) from None
                os.close(fd)
                fd = child
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _lstat(self, dir_fd, name, shown):
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError as error:
            raise _os_error(error, shown) from None
        if stat_mod.S_ISLNK(st.st_mode):
            raise FileOpError("INVALID_PATH", "%s is a symbolic link" % shown)
        return st

    def stat(self, path):
        parts = split_path(path, allow_root=True)
        if not parts:
            return file_info([], os.stat(self.root))
        fd = self._open_dir(parts[:-1])
        try:
            return file_info(parts, self._lstat(fd, parts[-1], path))
        finally:
            os.close(fd)

    def list(self, path, recursive):
        parts = split_path(path, allow_root=True)
        fd = self._open_dir(parts)
        entries = []
        try:
            self._scan(fd, parts, recursive, entries, 0)
        finally:
            os.close(fd)
        entries.sort(key=lambda e: e["path"])
        return entries

    def _scan(self, fd, parts, recursive, out, depth):
        with os.scandir(fd) as it:
            children = []
            for entry in it:
                if entry.name.startswith(TEMP_PREFIX):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue  # vanished while listing
                if not (stat_mod.S_ISREG(st.st_mode) or stat_mod.S_ISDIR(st.st_mode)):
                    continue  # symlinks, fifos, sockets are not part of the files API
                if len(out) >= MAX_LIST_ENTRIES:
                    return
                out.append(file_info(parts + [entry.name], st))
                if recursive and stat_mod.S_ISDIR(st.st_mode):
                    children.append(entry.name)
        if depth >= MAX_LIST_DEPTH:
            return
        for name in children:
            try:
                child = os.open(name, DIR_FLAGS, dir_fd=fd)
            except OSError:
                continue  # replaced by a symlink meanwhile: skip it
            try:
                self._scan(child, parts + [name], recursive, out, depth + 1)
            finally:
                os.close(child)

    def delete(self, path):
        parts = split_path(path)
        fd = self._open_dir(parts[:-1])
        try:
            st = self._lstat(fd, parts[-1], path)
            try:
                if stat_mod.S_ISDIR(st.st_mode):
                    shutil.rmtree(parts[-1], dir_fd=fd)  # the fd-based, symlink-safe variant
                else:
                    os.unlink(parts[-1], dir_fd=fd)
            except OSError as error:
                raise _os_error(error, path) from None
        finally:
            os.close(fd)

    def open_read(self, path):
        """(fd, FileInfo) of a regular file; the fd is positioned at 0."""
        parts = split_path(path)
        dir_fd = self._open_dir(parts[:-1])
        try:
            try:
                # O_NONBLOCK: opening a FIFO planted by session code must not hang the agent.
                fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
            except OSError as error:
                raise _os_error(error, path) from None
        finally:
            os.close(dir_fd)
        st = os.fstat(fd)
        if not stat_mod.S_ISREG(st.st_mode):
            os.close(fd)
            raise FileOpError("INVALID_PATH", "%s is not a regular file" % path)
        os.set_blocking(fd, True)
        return fd, file_info(parts, st)

    def begin_upload(self, path, max_bytes, size=None):
        parts = split_path(path)
        # A declared size that cannot fit is refused before anything is created.
        refusal = self.memory_room.refusal(size if size is not None else 1)
        if refusal is not None:
            raise FileOpError("NO_SPACE", refusal)
        return Upload(self, parts, max_bytes)


class Upload:
    """An upload in progress: bytes go to a temp file next to the target, renamed at the end."""

    def __init__(self, data_dir, parts, max_bytes):
        self.memory_room = data_dir.memory_room
        self.parts = parts
        self.path = "/".join(parts)
        self.max_bytes = max_bytes
        self.total = 0
        self.dir_fd = data_dir._open_dir(parts[:-1], create=True)
        self.fd = None
        try:
            try:
                st = os.stat(parts[-1], dir_fd=self.dir_fd, follow_symlinks=False)
                if not stat_mod.S_ISREG(st.st_mode):
                    raise FileOpError("INVALID_PATH", "%s exists and is not a regular file" % self.path)
            except FileNotFoundError:
                pass
            self.temp = TEMP_PREFIX + secrets.token_hex(8)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                self.fd = os.open(self.temp, flags, 0o644, dir_fd=self.dir_fd)
            except OSError as error:
                raise _os_error(error, self.path) from None
        except BaseException:
            os.close(self.dir_fd)
            raise

    def write(self, data):
        self.total += len(data)
        if self.total > self.max_bytes:
            self.abort()
            raise FileOpError("FILE_TOO_LARGE", "%s exceeds the limit of %d bytes" % (self.path, self.max_bytes))
        # Checked before each chunk is written: the one that would leave the session's code without
        # memory is refused instead (the temp file's earlier chunks are already counted in the cgroup).
        refusal = self.memory_room.refusal(len(data))
        if refusal is not None:
            self.abort()
            raise FileOpError("NO_SPACE", refusal)
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError as error:
            self.abort()
            raise _os_error(error, self.path) from None

    def finish(self, mtime=None, mode=None):
        """Rename into place; `mtime`/`mode` are set first when given (a restored checkpoint's files)."""
        try:
            if mode is not None:
                os.fchmod(self.fd, mode & 0o777)
            if mtime is not None:
                os.utime(self.fd, (mtime, mtime))
            os.close(self.fd)
            self.fd = None
            os.rename(self.temp, self.parts[-1], src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
            st = os.stat(self.parts[-1], dir_fd=self.dir_fd, follow_symlinks=False)
            return file_info(self.parts, st)
        except OSError as error:
            self.abort()
            raise _os_error(error, self.path) from None
        finally:
            self._close_dir()

    def abort(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.dir_fd is not None:
            try:
                os.unlink(self.temp, dir_fd=self.dir_fd)
            except OSError:
                pass
            self._close_dir()

    def _close_dir(self):
        if self.dir_fd is not None:
            os.close(self.dir_fd)
            self.dir_fd = None
