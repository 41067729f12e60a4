#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The few file operations the runtime needs, without Foundation.
@usableFromInline package enum FileSystem {
    /// Reads `byteCount` bytes at `offset` of the file at `path` (the whole file when `byteCount` is nil).
    ///
    /// - Throws: ``OnyxError`` `.io` if the file cannot be opened or is shorter than asked,
    ///   `.limitExceeded` if it is larger than `limit`.
    package static func read(_ path: String, offset: Int = 0, byteCount: Int? = nil, limit: Int = .max) throws -> [UInt8] {
        try withOpenRange(path, offset: offset, byteCount: byteCount, limit: limit) { fd, count in
            try [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
                if count > 0 { try readFully(fd, path, into: UnsafeMutableRawPointer(buffer.baseAddress!), count: count, at: offset) }
                initialized = count
            }
        }
    }

    /// Calls `body` with the whole file at `path` read into memory that is not zeroed first (the
    /// bytes are only ever read, then freed when `body` returns).
    ///
    /// The file is read, not mapped: a mapped file that another process truncates while it is
    /// being decoded (a model overwritten in place in a repository) would kill the server with
    /// SIGBUS; a read sees a short file and fails with an error.
    ///
    /// - Throws: What ``read(_:offset:byteCount:limit:)`` throws, and whatever `body` throws.
    @inlinable package static func withContents<R>(
        of path: String, limit: Int = .max, _ body: (UnsafeRawBufferPointer) throws -> R
    ) throws -> R {
        try withOpenRange(path, offset: 0, byteCount: nil, limit: limit) { fd, count in
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 16)
            defer { buffer.deallocate() }
            try readFully(fd, path, into: buffer, count: count, at: 0)
            return try body(UnsafeRawBufferPointer(start: buffer, count: count))
        }
    }

    /// Opens the regular file at `path` and checks that `byteCount` bytes (the rest of the file when
    /// nil) at `offset` exist and are within `limit`; calls `body` with the descriptor and count.
    @usableFromInline package static func withOpenRange<R>(
        _ path: String, offset: Int, byteCount: Int?, limit: Int, _ body: (Int32, Int) throws -> R
    ) throws -> R {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw OnyxError(.io, "cannot open '\(path)': \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw OnyxError(.io, "cannot stat '\(path)'") }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw OnyxError(.io, "'\(path)' is not a regular file") }
        let size = Int(info.st_size)
        let count = byteCount ?? (size - offset)
        guard offset >= 0, count >= 0, offset <= size, count <= size - offset else {
            throw OnyxError(.io, "'\(path)' has \(size) bytes; cannot read \(count) bytes at offset \(offset)")
        }
        guard count <= limit else {
            throw OnyxError.limitExceeded("'\(path)' needs \(count) bytes, more than the limit of \(limit)")
        }
        return try body(fd, count)
    }

    /// Reads exactly `count` bytes at `offset` of `fd`, or throws (a file that shrank meanwhile).
    @usableFromInline package static func readFully(_ fd: Int32, _ path: String, into buffer: UnsafeMutableRawPointer, count: Int, at offset: Int) throws {
        var done = 0
        while done < count {
            let n = pread(fd, buffer + done, count - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw OnyxError(.io, "reading '\(path)' failed after \(done) of \(count) bytes") }
            done += n
        }
    }

    /// Writes `bytes` to the file at `path`, replacing it: the bytes go to a temporary file beside
    /// it that is then renamed over it, so a reader (or a failed write) never sees half a file.
    ///
    /// - Throws: ``OnyxError`` `.io` naming the path and the system's reason.
    package static func write(_ bytes: UnsafeRawBufferPointer, to path: String) throws {
        let temporary = "\(path).tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw OnyxError(.io, "cannot create '\(temporary)': \(String(cString: strerror(errno)))") }
        var done = 0
        while done < bytes.count {
            let n = systemWrite(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let reason = String(cString: strerror(errno))
                close(fd)
                unlink(temporary)
                throw OnyxError(.io, "writing '\(temporary)' failed after \(done) of \(bytes.count) bytes: \(reason)")
            }
            done += n
        }
        guard close(fd) == 0 else {
            unlink(temporary)
            throw OnyxError(.io, "writing '\(temporary)' failed: \(String(cString: strerror(errno)))")
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw OnyxError(.io, "cannot move '\(temporary)' to '\(path)': \(reason)")
        }
    }

    /// The canonical absolute path of an existing file or folder, with symlinks resolved.
    package static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The folder part of `path` (`.` if it has none).
    package static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let folder = String(path[..<slash])
        return folder.isEmpty ? "/" : folder
    }
}

/// The C library's `write`, which `FileSystem.write` would shadow inside the enum.
private func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, buffer, count)
}
