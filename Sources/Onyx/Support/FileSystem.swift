#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The few file operations the runtime needs, without Foundation.
enum FileSystem {
    /// Reads `byteCount` bytes at `offset` of the file at `path` (the whole file when `byteCount` is nil).
    ///
    /// - Throws: ``OnyxError`` `.io` if the file cannot be opened or is shorter than asked,
    ///   `.limitExceeded` if it is larger than `limit`.
    static func read(_ path: String, offset: Int = 0, byteCount: Int? = nil, limit: Int = .max) throws -> [UInt8] {
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
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        try bytes.withUnsafeMutableBytes { buffer in
            while done < count {
                let n = pread(fd, buffer.baseAddress! + done, count - done, off_t(offset + done))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw OnyxError(.io, "reading '\(path)' failed after \(done) of \(count) bytes") }
                done += n
            }
        }
        return bytes
    }

    /// Calls `body` with the whole file at `path` mapped read-only, without reading it into memory
    /// first; the mapping ends when `body` returns. Falls back to ``read(_:offset:byteCount:limit:)``
    /// where the file cannot be mapped.
    ///
    /// - Throws: What `read` throws, and whatever `body` throws.
    static func withMappedFile<R>(
        _ path: String, limit: Int = .max, _ body: (UnsafeRawBufferPointer) throws -> R
    ) throws -> R {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw OnyxError(.io, "cannot open '\(path)': \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw OnyxError(.io, "cannot stat '\(path)'") }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw OnyxError(.io, "'\(path)' is not a regular file") }
        let size = Int(info.st_size)
        guard size <= limit else {
            throw OnyxError.limitExceeded("'\(path)' needs \(size) bytes, more than the limit of \(limit)")
        }
        guard size > 0, let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED else {
            return try read(path, limit: limit).withUnsafeBytes(body)
        }
        defer { munmap(mapped, size) }
        #if os(Linux)
        madvise(mapped, size, MADV_SEQUENTIAL)
        #endif
        return try body(UnsafeRawBufferPointer(start: mapped, count: size))
    }

    /// The canonical absolute path of an existing file or folder, with symlinks resolved.
    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The folder part of `path` (`.` if it has none).
    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let folder = String(path[..<slash])
        return folder.isEmpty ? "/" : folder
    }
}
