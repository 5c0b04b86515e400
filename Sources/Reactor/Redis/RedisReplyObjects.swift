import CHiredis
import Glibc

/// hiredis reply objects without a malloc per reply.
///
/// hiredis builds every reply with `calloc` (plus a `malloc` for its string) and frees it
/// right after our callback; only one top-level reply is ever alive at a time (it is freed
/// before the reader parses the next). So each connection owns one slot, a `redisReply` with
/// an inline string buffer, that serves every top-level scalar reply (status, error, integer,
/// nil, bulk up to `inlineCapacity` bytes). Arrays, their elements and longer strings still
/// take hiredis' path (our copy of it below, since its functions are static).
///
/// A slot reply marks itself by pointing its unused `element` field at itself; `freeObject`
/// gets no privdata, and this is how it tells the slot from a malloc'd reply.
enum RedisReplyObjects {
    /// Bytes a top-level string may have to use the slot.
    static let inlineCapacity = 1024

    /// The function table installed on every connection's reader (lives for the process).
    nonisolated(unsafe) static let functions: UnsafeMutablePointer<redisReplyObjectFunctions> = {
        let table = UnsafeMutablePointer<redisReplyObjectFunctions>.allocate(capacity: 1)
        table.initialize(to: redisReplyObjectFunctions(
            createString: { task, str, len in RedisReplyObjects.createString(task, str, len) },
            createArray: { task, elements in RedisReplyObjects.createArray(task, elements) },
            createInteger: { task, value in
                let reply = RedisReplyObjects.makeReply(task, type: HiredisReplyType.integer)
                reply?.pointee.integer = value
                return UnsafeMutableRawPointer(reply)
            },
            createNil: { task in UnsafeMutableRawPointer(RedisReplyObjects.makeReply(task, type: HiredisReplyType.null)) },
            freeObject: { object in RedisReplyObjects.free(object) }))
        return table
    }()

    /// Allocates a connection's slot (zeroed: free).
    static func allocateSlot() -> UnsafeMutableRawPointer {
        let size = MemoryLayout<redisReply>.stride + inlineCapacity
        let slot = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        slot.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        return slot
    }

    /// Points `reader` at our functions and the connection's slot.
    static func install(on reader: UnsafeMutablePointer<redisReader>, slot: UnsafeMutableRawPointer) {
        reader.pointee.fn = functions
        reader.pointee.privdata = slot
    }

    /// The slot if this is a free top-level position, else nil.
    @inline(__always)
    private static func freeSlot(_ task: UnsafePointer<redisReadTask>) -> UnsafeMutablePointer<redisReply>? {
        guard task.pointee.parent == nil, let raw = task.pointee.privdata else { return nil }
        let reply = raw.assumingMemoryBound(to: redisReply.self)
        return reply.pointee.element == nil ? reply : nil
    }

    @inline(__always)
    private static func occupy(_ reply: UnsafeMutablePointer<redisReply>, type: Int32) {
        reply.pointee.type = type
        reply.pointee.integer = 0
        reply.pointee.len = 0
        reply.pointee.str = nil
        reply.pointee.elements = 0
        reply.pointee.element = UnsafeMutableRawPointer(reply).assumingMemoryBound(to: UnsafeMutablePointer<redisReply>?.self)
    }

    /// A reply object for `task`, from the slot when possible, linked into its parent array.
    private static func makeReply(_ task: UnsafePointer<redisReadTask>?, type: Int32) -> UnsafeMutablePointer<redisReply>? {
        guard let task else { return nil }
        if let slot = freeSlot(task) {
            occupy(slot, type: type)
            return slot
        }
        guard let raw = calloc(1, MemoryLayout<redisReply>.size) else { return nil }
        let reply = raw.assumingMemoryBound(to: redisReply.self)
        reply.pointee.type = type
        link(reply, task)
        return reply
    }

    private static func link(_ reply: UnsafeMutablePointer<redisReply>, _ task: UnsafePointer<redisReadTask>) {
        guard let parent = task.pointee.parent, let object = parent.pointee.obj else { return }
        let array = object.assumingMemoryBound(to: redisReply.self)
        array.pointee.element[Int(task.pointee.idx)] = reply
    }

    private static func createString(_ task: UnsafePointer<redisReadTask>?, _ str: UnsafeMutablePointer<CChar>?,
                                     _ len: Int) -> UnsafeMutableRawPointer? {
        guard let task else { return nil }
        let type = task.pointee.type
        if len < inlineCapacity, let slot = freeSlot(task) {
            occupy(slot, type: type)
            let buffer = (UnsafeMutableRawPointer(slot) + MemoryLayout<redisReply>.stride).assumingMemoryBound(to: CChar.self)
            if len > 0, let str { buffer.update(from: str, count: len) }
            buffer[len] = 0
            slot.pointee.str = buffer
            slot.pointee.len = len
            return UnsafeMutableRawPointer(slot)
        }
        guard let raw = calloc(1, MemoryLayout<redisReply>.size) else { return nil }
        guard let buffer = malloc(len + 1)?.assumingMemoryBound(to: CChar.self) else {
            Glibc.free(raw)
            return nil
        }
        if len > 0, let str { buffer.update(from: str, count: len) }
        buffer[len] = 0
        let reply = raw.assumingMemoryBound(to: redisReply.self)
        reply.pointee.type = type
        reply.pointee.str = buffer
        reply.pointee.len = len
        link(reply, task)
        return raw
    }

    private static func createArray(_ task: UnsafePointer<redisReadTask>?, _ elements: Int32) -> UnsafeMutableRawPointer? {
        guard let task, let raw = calloc(1, MemoryLayout<redisReply>.size) else { return nil }
        let reply = raw.assumingMemoryBound(to: redisReply.self)
        reply.pointee.type = HiredisReplyType.array
        if elements > 0 {
            guard let vector = calloc(Int(elements), MemoryLayout<UnsafeMutablePointer<redisReply>?>.stride) else {
                Glibc.free(raw)
                return nil
            }
            reply.pointee.element = vector.assumingMemoryBound(to: UnsafeMutablePointer<redisReply>?.self)
        }
        reply.pointee.elements = Int(max(elements, 0))
        link(reply, task)
        return raw
    }

    /// hiredis' freeReplyObject for both kinds: a slot is only marked free.
    static func free(_ object: UnsafeMutableRawPointer?) {
        guard let object else { return }
        let reply = object.assumingMemoryBound(to: redisReply.self)
        if UnsafeMutableRawPointer(reply.pointee.element) == object {
            reply.pointee.element = nil
            return
        }
        switch reply.pointee.type {
        case HiredisReplyType.array:
            if let vector = reply.pointee.element {
                for i in 0..<reply.pointee.elements { free(UnsafeMutableRawPointer(vector[i])) }
                Glibc.free(vector)
            }
        case HiredisReplyType.string, HiredisReplyType.status, HiredisReplyType.error:
            Glibc.free(reply.pointee.str)
        default:
            break
        }
        Glibc.free(object)
    }
}
