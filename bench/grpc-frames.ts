import type http2 from "node:http2";

/** A protobuf message in gRPC's length-prefixed frame: flag byte, 4-byte length, bytes. */
export function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

/** The message inside a gRPC response body, which holds at most one for a unary call. */
export function grpcMessage(body: Buffer): Buffer {
  return body.subarray(5, 5 + body.readUInt32BE(1));
}

export interface UnaryResult {
  grpcStatus: number;
  body: Buffer;
}

export const GRPC_HEADERS = { "content-type": "application/grpc", te: "trailers" } as const;

/** One unary gRPC call with a pre-encoded frame over a raw HTTP/2 session. */
export function unaryCall(
  session: http2.ClientHttp2Session,
  path: string,
  frame: Buffer,
): Promise<UnaryResult> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":method": "POST", ":path": path, ...GRPC_HEADERS });
    const chunks: Buffer[] = [];
    let grpcStatus = -1;
    stream.on("response", (headers) => {
      // A trailers-only response carries the status in its headers.
      if (headers["grpc-status"] !== undefined) {
        grpcStatus = Number(headers["grpc-status"]);
      }
    });
    stream.on("trailers", (trailers) => {
      grpcStatus = Number(trailers["grpc-status"]);
    });
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", () => resolve({ grpcStatus, body: Buffer.concat(chunks) }));
    stream.on("error", reject);
    stream.end(frame);
  });
}

/** The value at quantile q (0..1) of ascending-sorted numbers. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) {
    return Number.NaN;
  }
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}
