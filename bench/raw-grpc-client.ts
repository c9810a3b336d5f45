/**
 * A minimal gRPC-over-HTTP/2 client for load generation: frames are written straight to a
 * TCP socket from bytes encoded once, and only frame headers are parsed on the way back.
 * node:http2 costs the generator more CPU per call than the server spends answering it, so
 * on a 2-core machine it runs out before the service does; this client costs a few µs a call.
 *
 * What it leaves out, on purpose: HPACK decoding (a call succeeded when its response
 * carried a message: grpc-js answers every error trailers-only, with no DATA frame), server
 * push, padding, priorities. Used only against our own server on loopback.
 */
import net from "node:net";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

// RFC 9113 §6: frame types and flags.
const DATA = 0x0;
const HEADERS = 0x1;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const PING = 0x6;
const GOAWAY = 0x7;
const WINDOW_UPDATE = 0x8;
const END_STREAM = 0x1;
const ACK = 0x1;
const END_HEADERS = 0x4;

const SETTINGS_ENABLE_PUSH = 0x2;
const SETTINGS_INITIAL_WINDOW_SIZE = 0x4;
const MAX_WINDOW = 2 ** 31 - 1;
const DEFAULT_WINDOW = 65_535;
/** The largest DATA payload a peer must accept without asking (SETTINGS_MAX_FRAME_SIZE). */
const DEFAULT_MAX_FRAME = 16_384;

function frameHeader(length: number, type: number, flags: number, streamId: number): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId, 5);
  return header;
}

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  return Buffer.concat([frameHeader(payload.length, type, flags, streamId), payload]);
}

/** An HPACK integer with an N-bit prefix (RFC 7541 §5.1). */
function hpackInteger(value: number, prefixBits: number, firstByteFlags: number): number[] {
  const limit = 2 ** prefixBits - 1;
  if (value < limit) {
    return [firstByteFlags | value];
  }
  const bytes = [firstByteFlags | limit];
  let rest = value - limit;
  while (rest >= 128) {
    bytes.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
  return bytes;
}

function hpackString(text: string): number[] {
  const bytes = Buffer.from(text, "latin1");
  return [...hpackInteger(bytes.length, 7, 0), ...bytes];
}

/**
 * The request header block of a gRPC call, as literals without indexing and without Huffman
 * (RFC 7541 §6.2.2), so it is the same bytes for every call and needs no encoder state.
 * Numbers are static-table indexes (RFC 7541 Appendix A).
 */
function grpcHeaderBlock(authority: string, path: string): Buffer {
  return Buffer.from([
    0x83, // :method POST
    0x86, // :scheme http
    ...hpackInteger(4, 4, 0), // :path
    ...hpackString(path),
    ...hpackInteger(1, 4, 0), // :authority
    ...hpackString(authority),
    ...hpackInteger(31, 4, 0), // content-type
    ...hpackString("application/grpc"),
    0x00, // a name not in the static table
    ...hpackString("te"),
    ...hpackString("trailers"),
  ]);
}

export interface CallResult {
  /** The response carried a message, which for a unary gRPC call means status OK. */
  ok: boolean;
  /** The response body: gRPC length-prefixed message(s). */
  body: Buffer;
}

interface PendingCall {
  resolve(result: CallResult): void;
  reject(error: Error): void;
  chunks: Buffer[];
}

/** One HTTP/2 connection carrying unary gRPC calls with pre-encoded request frames. */
export class RawGrpcConnection {
  private readonly pending = new Map<number, PendingCall>();
  private readonly headerBlocks = new Map<string, Buffer>();
  private nextStreamId = 1;
  private unread: Buffer = Buffer.alloc(0);
  /** What the server lets us send on the connection before its next WINDOW_UPDATE. */
  private sendWindow = DEFAULT_WINDOW;
  /** Calls waiting for the connection's send window to open. */
  private readonly blocked: Array<() => void> = [];
  private receivedSinceUpdate = 0;
  private failure: Error | undefined;

  private constructor(
    private readonly socket: net.Socket,
    private readonly authority: string,
  ) {
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", (error) => this.failAll(error));
    socket.on("close", () => this.failAll(new Error("connection closed")));
  }

  static connect(port: number, host = "127.0.0.1"): Promise<RawGrpcConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, host, () => {
        socket.off("error", reject);
        const connection = new RawGrpcConnection(socket, `${host}:${port}`);
        const settings = Buffer.alloc(12);
        settings.writeUInt16BE(SETTINGS_ENABLE_PUSH, 0);
        settings.writeUInt32BE(0, 2);
        settings.writeUInt16BE(SETTINGS_INITIAL_WINDOW_SIZE, 6);
        settings.writeUInt32BE(MAX_WINDOW, 8);
        const increment = Buffer.alloc(4);
        increment.writeUInt32BE(MAX_WINDOW - DEFAULT_WINDOW);
        socket.write(
          Buffer.concat([
            PREFACE,
            frame(SETTINGS, 0, 0, settings),
            frame(WINDOW_UPDATE, 0, 0, increment),
          ]),
        );
        resolve(connection);
      });
      socket.once("error", reject);
    });
  }

  /** One unary call: `message` is a gRPC length-prefixed frame (see grpcFrame). */
  async call(path: string, message: Buffer): Promise<CallResult> {
    if (message.length > DEFAULT_MAX_FRAME) {
      throw new Error(`a request of ${message.length} bytes needs more than one DATA frame`);
    }
    while (this.sendWindow < message.length && this.failure === undefined) {
      await new Promise<void>((resolve) => this.blocked.push(resolve));
    }
    if (this.failure !== undefined) {
      throw this.failure;
    }
    this.sendWindow -= message.length;
    let headerBlock = this.headerBlocks.get(path);
    if (headerBlock === undefined) {
      headerBlock = grpcHeaderBlock(this.authority, path);
      this.headerBlocks.set(path, headerBlock);
    }
    const streamId = this.nextStreamId;
    this.nextStreamId += 2;
    return new Promise((resolve, reject) => {
      this.pending.set(streamId, { resolve, reject, chunks: [] });
      this.socket.write(
        Buffer.concat([
          frameHeader(headerBlock.length, HEADERS, END_HEADERS, streamId),
          headerBlock,
          frameHeader(message.length, DATA, END_STREAM, streamId),
          message,
        ]),
      );
    });
  }

  close(): void {
    this.socket.end();
  }

  private onData(chunk: Buffer): void {
    let buffer = this.unread.length === 0 ? chunk : Buffer.concat([this.unread, chunk]);
    while (buffer.length >= 9) {
      const length = buffer.readUIntBE(0, 3);
      if (buffer.length < 9 + length) {
        break;
      }
      this.onFrame(
        buffer[3] as number,
        buffer[4] as number,
        buffer.readUInt32BE(5) & MAX_WINDOW,
        buffer.subarray(9, 9 + length),
      );
      buffer = buffer.subarray(9 + length);
    }
    this.unread = buffer;
  }

  private onFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    switch (type) {
      case DATA: {
        this.pending.get(streamId)?.chunks.push(Buffer.from(payload));
        this.receivedSinceUpdate += payload.length;
        if (this.receivedSinceUpdate > MAX_WINDOW / 2) {
          const increment = Buffer.alloc(4);
          increment.writeUInt32BE(this.receivedSinceUpdate);
          this.socket.write(frame(WINDOW_UPDATE, 0, 0, increment));
          this.receivedSinceUpdate = 0;
        }
        break;
      }
      case HEADERS:
        break;
      case RST_STREAM:
        this.finish(streamId);
        return;
      case SETTINGS:
        if ((flags & ACK) === 0) {
          this.socket.write(frameHeader(0, SETTINGS, ACK, 0));
        }
        return;
      case PING:
        if ((flags & ACK) === 0) {
          this.socket.write(frame(PING, ACK, 0, Buffer.from(payload)));
        }
        return;
      case GOAWAY:
        this.failAll(new Error("the server sent GOAWAY"));
        return;
      case WINDOW_UPDATE:
        if (streamId === 0) {
          this.sendWindow += payload.readUInt32BE(0) & MAX_WINDOW;
          for (const resume of this.blocked.splice(0)) {
            resume();
          }
        }
        return;
    }
    if ((flags & END_STREAM) !== 0) {
      this.finish(streamId);
    }
  }

  private finish(streamId: number): void {
    const call = this.pending.get(streamId);
    if (call !== undefined) {
      this.pending.delete(streamId);
      const body = Buffer.concat(call.chunks);
      call.resolve({ ok: body.length > 0, body });
    }
  }

  private failAll(error: Error): void {
    this.failure ??= error;
    for (const call of this.pending.values()) {
      call.reject(error);
    }
    this.pending.clear();
    for (const resume of this.blocked.splice(0)) {
      resume();
    }
  }
}
