import NIOCore
import NIOHPACK
import NIOHTTP2

/// Refuses a request message longer than the limit with the status RESOURCE_EXHAUSTED, as soon as
/// its 5-byte gRPC length prefix arrives and without reading the message itself.
///
/// It sits first in each HTTP/2 stream's pipeline, before the transport's own gRPC handler, which
/// checks the same limit but answers a longer message by resetting the stream (RST_STREAM) with no
/// status. This handler only counts: it follows the length prefixes through the DATA frames and
/// passes every frame on untouched until a prefix is over the limit. Then it sends the status as
/// trailers (a Trailers-Only response when no headers went out yet), resets the stream with
/// NO_ERROR (RFC 9113 §8.1: a complete response sent before the request is whole) so the client
/// stops sending, and drops the rest of the stream's frames, in and out. The transport's handler
/// sees the stream close before a message and ends the call, as it does for a cancelled one.
final class MessageLimitHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = HTTP2Frame.FramePayload
    typealias OutboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    /// The largest message accepted, in bytes (as sent: compressed if the client compressed it).
    private let limit: Int
    /// Length prefix bytes of the next message seen so far (the compression flag first, then a
    /// big-endian 32-bit length).
    private var prefix: [UInt8] = []
    /// Bytes of the current message still to pass before the next prefix.
    private var remaining = 0
    private var sentHeaders = false
    private var refused = false

    init(limit: Int) {
        self.limit = limit
        prefix.reserveCapacity(5)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        let payload = unwrapInboundIn(data)
        if case .data(let frame) = payload, case .byteBuffer(let buffer) = frame.data, let length = overLimit(buffer) {
            refuse(context: context, length: length)
            return
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !refused else {
            promise?.fail(ChannelError.outputClosed)
            return
        }
        if case .headers = unwrapOutboundIn(data) { sentHeaders = true }
        context.write(data, promise: promise)
    }

    /// Follows the message framing through `buffer`; the length of the first message whose prefix
    /// is over the limit, or nil.
    private func overLimit(_ buffer: ByteBuffer) -> Int? {
        let bytes = buffer.readableBytesView
        var index = bytes.startIndex
        while index < bytes.endIndex {
            if remaining > 0 {
                let skipped = min(remaining, bytes.endIndex - index)
                index += skipped
                remaining -= skipped
                continue
            }
            prefix.append(bytes[index])
            index += 1
            guard prefix.count == 5 else { continue }
            let length = prefix[1...].reduce(0) { $0 << 8 | Int($1) }
            prefix.removeAll(keepingCapacity: true)
            if length > limit { return length }
            remaining = length
        }
        return nil
    }

    private func refuse(context: ChannelHandlerContext, length: Int) {
        refused = true
        var trailers: HPACKHeaders = sentHeaders ? [:] : [":status": "200", "content-type": "application/grpc"]
        trailers.add(name: "grpc-status", value: "8")  // RESOURCE_EXHAUSTED
        // ASCII without '%': needs no percent-encoding.
        trailers.add(
            name: "grpc-message",
            value: "the request message is \(length) bytes, over the server's limit of \(limit) bytes (onyx serve --max-body-bytes)")
        context.write(wrapOutboundOut(.headers(.init(headers: trailers, endStream: true))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.rstStream(.noError)), promise: nil)
    }
}
