/**
 * The baselines' server: the same grpc-js stack as the service (src/rpc/grpc-adapter.ts)
 * without its logging, metrics and header-size check. GetJwks answers a constant (the
 * echo-bare rows); Verify only checks an ES256 signature with jsonwebtoken and a KeyObject
 * and answers the subject (echo+es256-verify). Prints {port, token} on stdout.
 */
import { generateKeyPairSync } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import jwt from "jsonwebtoken";
import { AuthService } from "../gen/auth/v1/auth_pb.js";
import { AuthError } from "../src/auth-error.js";
import { addGrpcService } from "../src/rpc/grpc-adapter.js";

const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
const token = jwt.sign(
  { sub: "baseline", sid: "baseline", username: "baseline", email: "baseline@bench.example" },
  privateKey,
  { algorithm: "ES256", expiresIn: "1h", issuer: "auth-service", audience: "internal" },
);
const unimplemented = async (): Promise<never> => {
  throw new AuthError("INVALID_ARGUMENT", "not part of the baseline");
};

const server = new grpc.Server();
addGrpcService(
  server,
  AuthService,
  {
    signUp: unimplemented,
    login: unimplemented,
    refresh: unimplemented,
    logout: unimplemented,
    async verify(request) {
      const claims = jwt.verify(request.accessToken, publicKey, { algorithms: ["ES256"] });
      return { userId: typeof claims === "object" ? String(claims.sub) : "" };
    },
    async getJwks() {
      return { jwksJson: "{}" };
    },
    async *watchRevocations() {},
  },
  (error) => console.error(error),
);
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, port) => {
  if (error) {
    throw error;
  }
  process.stdout.write(`${JSON.stringify({ port, token })}\n`);
});
process.once("SIGTERM", () => server.forceShutdown());
