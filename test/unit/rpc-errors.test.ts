import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it, vi } from "vitest";
import { BadRequestSchema, ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import { AuthError, type AuthErrorReason } from "../../src/auth-error.js";
import {
  ERROR_DOMAIN,
  grpcStatusDetails,
  REASON_CODES,
  toConnectError,
} from "../../src/rpc/errors.js";

/** DESIGN.md §2, written out again as gRPC's numeric codes. */
const DESIGN_CODES: Record<AuthErrorReason, number> = {
  INVALID_ARGUMENT: 3,
  USER_ALREADY_EXISTS: 6,
  INVALID_CREDENTIALS: 16,
  RATE_LIMITED: 8,
  REFRESH_TOKEN_INVALID: 16,
  REFRESH_TOKEN_EXPIRED: 16,
  REFRESH_TOKEN_REUSED: 16,
  TOKEN_INVALID: 16,
  TOKEN_EXPIRED: 16,
  SESSION_REVOKED: 16,
  UNAVAILABLE: 14,
};
const REASONS = Object.keys(DESIGN_CODES) as AuthErrorReason[];

const neverInternal = () => {
  throw new Error("onInternal must not be called");
};

function unpackStatus(error: ConnectError) {
  const status = fromBinary(StatusSchema, grpcStatusDetails(error));
  const errorInfos = status.details.flatMap((any) => {
    const info = anyUnpack(any, ErrorInfoSchema);
    return info ? [info] : [];
  });
  const badRequests = status.details.flatMap((any) => {
    const badRequest = anyUnpack(any, BadRequestSchema);
    return badRequest ? [badRequest] : [];
  });
  return { status, errorInfos, badRequests };
}

describe("REASON_CODES", () => {
  it("has exactly the reasons of DESIGN.md §2", () => {
    expect(Object.keys(REASON_CODES).sort()).toEqual([...REASONS].sort());
  });

  it.each(REASONS)("maps %s to its §2 code", (reason) => {
    expect(REASON_CODES[reason]).toBe(DESIGN_CODES[reason]);
  });

  it("uses Connect codes that are gRPC's numbers", () => {
    expect(Code.InvalidArgument).toBe(3);
    expect(Code.AlreadyExists).toBe(6);
    expect(Code.ResourceExhausted).toBe(8);
    expect(Code.Unavailable).toBe(14);
    expect(Code.Unauthenticated).toBe(16);
  });
});

describe("toConnectError", () => {
  it.each(REASONS)("turns an AuthError %s into its code with an ErrorInfo", (reason) => {
    const error = toConnectError(new AuthError(reason, "a safe message"), neverInternal);
    expect(error.code).toBe(DESIGN_CODES[reason]);
    expect(error.rawMessage).toBe("a safe message");
    const infos = error.findDetails(ErrorInfoSchema);
    expect(infos).toHaveLength(1);
    expect(infos[0]?.domain).toBe("auth.v1");
    expect(infos[0]?.reason).toBe(reason);
    expect(error.findDetails(BadRequestSchema)).toEqual([]);
  });

  it('uses the domain "auth.v1"', () => {
    expect(ERROR_DOMAIN).toBe("auth.v1");
  });

  it("carries ErrorInfo metadata", () => {
    const error = toConnectError(
      new AuthError("USER_ALREADY_EXISTS", "the email is taken", { metadata: { field: "email" } }),
      neverInternal,
    );
    expect(error.code).toBe(Code.AlreadyExists);
    expect(error.findDetails(ErrorInfoSchema)[0]?.metadata).toEqual({ field: "email" });
  });

  it("adds a BadRequest naming every field violation", () => {
    const fieldViolations = [
      { field: "username", description: "must be 3 to 64 characters" },
      { field: "phone_number", description: "must be in E.164 form" },
    ];
    const error = toConnectError(
      new AuthError("INVALID_ARGUMENT", "invalid request", { fieldViolations }),
      neverInternal,
    );
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.findDetails(ErrorInfoSchema)[0]?.reason).toBe("INVALID_ARGUMENT");
    const badRequests = error.findDetails(BadRequestSchema);
    expect(badRequests).toHaveLength(1);
    expect(
      badRequests[0]?.fieldViolations.map(({ field, description }) => ({ field, description })),
    ).toEqual(fieldViolations);
  });

  it("hides an unknown error behind INTERNAL and reports it", () => {
    const onInternal = vi.fn();
    const original = new Error("relation users does not exist at SELECT password_hash");
    const error = toConnectError(original, onInternal);
    expect(error.code).toBe(Code.Internal);
    expect(error.rawMessage).toBe("internal error");
    expect(error.message).not.toContain("password_hash");
    expect(error.message).not.toContain("relation users");
    expect(onInternal).toHaveBeenCalledTimes(1);
    expect(onInternal).toHaveBeenCalledWith(original);
    const { status } = unpackStatus(error);
    expect(status.message).not.toContain("password_hash");
  });

  it("hides a thrown non-Error behind INTERNAL and reports it", () => {
    const onInternal = vi.fn();
    const error = toConnectError("a secret string", onInternal);
    expect(error.code).toBe(Code.Internal);
    expect(error.message).not.toContain("a secret string");
    expect(onInternal).toHaveBeenCalledWith("a secret string");
  });

  it("hides an INTERNAL ConnectError's message and reports it", () => {
    const onInternal = vi.fn();
    const original = new ConnectError("stack trace at db.ts:12", Code.Internal);
    const error = toConnectError(original, onInternal);
    expect(error.code).toBe(Code.Internal);
    expect(error.message).not.toContain("db.ts");
    expect(onInternal).toHaveBeenCalledWith(original);
  });

  it("passes a transport ConnectError with another code through", () => {
    const original = new ConnectError("deadline exceeded", Code.DeadlineExceeded);
    const error = toConnectError(original, neverInternal);
    expect(error.code).toBe(Code.DeadlineExceeded);
    expect(error.rawMessage).toBe("deadline exceeded");
  });

  it.each([
    [
      "ECONNREFUSED",
      Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" }),
    ],
    ["57P01 admin_shutdown", Object.assign(new Error("terminating connection"), { code: "57P01" })],
    [
      "an AggregateError of ECONNREFUSED",
      new AggregateError([
        Object.assign(new Error("connect ECONNREFUSED ::1:5432"), { code: "ECONNREFUSED" }),
      ]),
    ],
  ])("turns a database outage (%s) into UNAVAILABLE", (_label, original) => {
    const error = toConnectError(original, neverInternal);
    expect(error.code).toBe(Code.Unavailable);
    const infos = error.findDetails(ErrorInfoSchema);
    expect(infos).toHaveLength(1);
    expect(infos[0]?.reason).toBe("UNAVAILABLE");
    expect(infos[0]?.domain).toBe("auth.v1");
    expect(error.message).not.toContain("5432");
  });
});

describe("grpcStatusDetails", () => {
  it("encodes a google.rpc.Status with the same code, message and details", () => {
    const error = toConnectError(
      new AuthError("INVALID_ARGUMENT", "invalid request", {
        fieldViolations: [{ field: "email", description: "is required" }],
      }),
      neverInternal,
    );
    const { status, errorInfos, badRequests } = unpackStatus(error);
    expect(status.code).toBe(3);
    expect(status.message).toBe("invalid request");
    expect(status.details.map((any) => any.typeUrl)).toEqual([
      "type.googleapis.com/google.rpc.ErrorInfo",
      "type.googleapis.com/google.rpc.BadRequest",
    ]);
    expect(errorInfos).toHaveLength(1);
    expect(errorInfos[0]?.reason).toBe("INVALID_ARGUMENT");
    expect(errorInfos[0]?.domain).toBe("auth.v1");
    expect(badRequests[0]?.fieldViolations.map((violation) => violation.field)).toEqual(["email"]);
  });

  it.each(REASONS)("encodes %s with its §2 code and reason", (reason) => {
    const error = toConnectError(
      new AuthError(reason, "message", { metadata: { field: "username" } }),
      neverInternal,
    );
    const { status, errorInfos } = unpackStatus(error);
    expect(status.code).toBe(DESIGN_CODES[reason]);
    expect(errorInfos).toHaveLength(1);
    expect(errorInfos[0]).toMatchObject({
      reason,
      domain: "auth.v1",
      metadata: { field: "username" },
    });
  });

  it("encodes UNAVAILABLE for a database outage", () => {
    const outage = Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
    const { status, errorInfos } = unpackStatus(toConnectError(outage, neverInternal));
    expect(status.code).toBe(14);
    expect(errorInfos[0]?.reason).toBe("UNAVAILABLE");
  });

  it("keeps details that arrived already encoded", () => {
    const info = create(ErrorInfoSchema, { reason: "UPSTREAM", domain: "other.v1" });
    // As a client receives them: still encoded, in `details` (not a constructor argument).
    const error = new ConnectError("upstream failed", Code.FailedPrecondition);
    error.details.push({ type: "google.rpc.ErrorInfo", value: toBinary(ErrorInfoSchema, info) });
    const { status, errorInfos } = unpackStatus(error);
    expect(status.code).toBe(Code.FailedPrecondition);
    expect(status.message).toBe("upstream failed");
    expect(errorInfos[0]).toMatchObject({ reason: "UPSTREAM", domain: "other.v1" });
  });

  it("encodes only the generic message for an INTERNAL error", () => {
    const { status } = unpackStatus(toConnectError(new Error("secret"), () => {}));
    expect(status.code).toBe(Code.Internal);
    expect(status.message).toBe("internal error");
  });
});
