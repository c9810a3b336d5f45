import { existsSync, readdirSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";

// Static checks: no Docker engine or cluster is needed (nor available) to run them.
const ROOT = new URL("../..", import.meta.url).pathname;
const read = (file: string) => readFileSync(path.join(ROOT, file), "utf8");

interface Instruction {
  keyword: string;
  argument: string;
}

/** Dockerfile instructions, continuation lines joined and comments dropped. */
function dockerfileInstructions(text: string): Instruction[] {
  const logical = text
    .split("\n")
    .filter((line) => !line.trimStart().startsWith("#"))
    .join("\n")
    .replace(/\\\n/g, " ");
  return logical
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const [keyword = "", ...rest] = line.split(/\s+/);
      return { keyword: keyword.toUpperCase(), argument: rest.join(" ") };
    });
}

/** Instructions grouped by stage, each stage named by its `AS` (or its index). */
function stages(instructions: Instruction[]): { name: string; instructions: Instruction[] }[] {
  const result: { name: string; instructions: Instruction[] }[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === "FROM") {
      const name = /\sAS\s+(\S+)/i.exec(instruction.argument)?.[1] ?? String(result.length);
      result.push({ name, instructions: [] });
    } else {
      result.at(-1)?.instructions.push(instruction);
    }
  }
  return result;
}

describe("Dockerfile", () => {
  const instructions = dockerfileInstructions(read("Dockerfile"));
  const allStages = stages(instructions);
  const runtime = allStages.at(-1);
  const runtimeText = (keyword: string) =>
    runtime?.instructions
      .filter((entry) => entry.keyword === keyword)
      .map((entry) => entry.argument) ?? [];

  it("builds in a build stage and runs from a separate runtime stage", () => {
    expect(allStages.map((stage) => stage.name)).toEqual(["build", "runtime"]);
    expect(allStages[0]?.instructions.some((entry) => /npm run build/.test(entry.argument))).toBe(
      true,
    );
  });

  it("runs as a non-root user", () => {
    const users = runtimeText("USER");
    expect(users.length).toBeGreaterThan(0);
    expect(users.at(-1)).not.toMatch(/^(root|0)(:|$)/);
  });

  it("installs production dependencies only in the runtime stage", () => {
    const installs = runtimeText("RUN").filter((command) => /\bnpm (ci|install)\b/.test(command));
    expect(installs.length).toBeGreaterThan(0);
    for (const install of installs) {
      expect(install).toMatch(/--omit=dev/);
    }
    // Nothing from the build stage but compiled output.
    for (const copy of runtimeText("COPY").filter((entry) => entry.startsWith("--from"))) {
      expect(copy).not.toMatch(/node_modules/);
    }
    expect(runtimeText("ENV").join(" ")).toMatch(/NODE_ENV=production/);
  });

  it("copies only files that exist, from stages that exist", () => {
    const names = new Set(allStages.map((stage) => stage.name));
    for (const copy of instructions.filter((entry) => entry.keyword === "COPY")) {
      const parts = copy.argument.split(/\s+/);
      const from = parts.find((part) => part.startsWith("--from="))?.slice("--from=".length);
      const paths = parts.filter((part) => !part.startsWith("--"));
      const sources = paths.slice(0, -1);
      expect(sources.length).toBeGreaterThan(0);
      if (from !== undefined) {
        expect(names).toContain(from);
      } else {
        for (const source of sources) {
          expect(existsSync(path.join(ROOT, source)), `COPY source ${source}`).toBe(true);
        }
      }
    }
  });

  it("checks health with the project's own gRPC health probe", () => {
    const [healthcheck] = runtimeText("HEALTHCHECK");
    expect(healthcheck).toMatch(/CMD \["node", "dist\/src\/healthcheck\.js"\]/);
    expect(existsSync(path.join(ROOT, "src/healthcheck.ts"))).toBe(true);
    expect(runtimeText("CMD").at(-1)).toBe('["node", "dist/src/main.js", "serve"]');
  });

  it("needs no devDependency at run time: every package src/ imports is a dependency", () => {
    const manifest = JSON.parse(read("package.json")) as {
      dependencies: Record<string, string>;
      bin: Record<string, string>;
    };
    const builtins = new Set(builtinModules);
    const files = readdirSync(path.join(ROOT, "src"), { recursive: true, encoding: "utf8" });
    for (const file of files.filter((name) => name.endsWith(".ts"))) {
      const text = read(path.join("src", file));
      for (const match of text.matchAll(/^import (?!type )[^;]*? from "([^".][^"]*)";/gms)) {
        const specifier = match[1] ?? "";
        const name = specifier.startsWith("@")
          ? specifier.split("/").slice(0, 2).join("/")
          : (specifier.split("/")[0] ?? "");
        if (name.startsWith("node:") || builtins.has(name)) {
          continue;
        }
        expect(Object.keys(manifest.dependencies), `${file} imports ${name}`).toContain(name);
      }
    }
    expect(manifest.bin["auth-service"]).toBe("dist/src/main.js");
  });
});

describe("docker-compose.yml", () => {
  it("parses and runs the service against PostgreSQL on a read-only root filesystem", () => {
    const compose = parse(read("docker-compose.yml")) as {
      services: Record<string, Record<string, unknown>>;
    };
    const service = compose.services["auth-service"];
    const postgres = compose.services.postgres;
    expect(service?.build).toBe(".");
    expect(String(postgres?.image)).toMatch(/^postgres:/);
    expect(service?.depends_on).toMatchObject({ postgres: { condition: "service_healthy" } });
    expect(
      String((service?.environment as Record<string, string> | undefined)?.DATABASE_URL),
    ).toMatch(/^postgres:\/\/.*@postgres:5432\//);
    expect(service?.read_only).toBe(true);
    expect(service?.ports).toEqual(["50051:50051", "8080:8080", "9090:9090"]);
  });
});

describe("deploy/kubernetes", () => {
  const directory = path.join(ROOT, "deploy/kubernetes");
  const documents = readdirSync(directory)
    .filter((file) => file.endsWith(".yaml"))
    .flatMap((file) =>
      parseAllDocuments(readFileSync(path.join(directory, file), "utf8")).map((document) => {
        expect(document.errors, file).toEqual([]);
        // biome-ignore lint/suspicious/noExplicitAny: manifests are free-form; the assertions check their shape
        return document.toJS() as Record<string, any>;
      }),
    );
  const byKind = (kind: string) => documents.filter((document) => document.kind === kind);

  it("parses, with every kind the deployment needs", () => {
    const kinds = documents.map((document) => document.kind).sort();
    expect(kinds).toEqual([
      "Deployment",
      "HorizontalPodAutoscaler",
      "Kustomization",
      "PodDisruptionBudget",
      "Secret",
      "Service",
    ]);
    const kustomization = byKind("Kustomization")[0];
    for (const resource of kustomization?.resources ?? []) {
      expect(existsSync(path.join(directory, resource))).toBe(true);
    }
  });

  it("probes the admin port, runs non-root on a read-only root filesystem, mounts the key", () => {
    const deployment = byKind("Deployment")[0];
    const pod = deployment?.spec.template.spec;
    const container = pod.containers[0];
    const ports = Object.fromEntries(
      container.ports.map((port: { name: string; containerPort: number }) => [
        port.name,
        port.containerPort,
      ]),
    );
    expect(ports).toEqual({ grpc: 50051, http: 8080, admin: 9090 });
    expect(container.livenessProbe.httpGet).toEqual({ path: "/healthz", port: "admin" });
    expect(container.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "admin" });
    expect(container.startupProbe.grpc.port).toBe(50051);
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    expect(container.securityContext.readOnlyRootFilesystem).toBe(true);
    const keyFile = container.env.find(
      (variable: { name: string }) => variable.name === "JWT_PRIVATE_KEY_FILE",
    );
    const keyMount = container.volumeMounts.find(
      (mount: { name: string }) => mount.name === "keys",
    );
    expect(keyFile.value.startsWith(keyMount.mountPath)).toBe(true);
    const secret = byKind("Secret")[0];
    expect(
      pod.volumes.find((volume: { name: string }) => volume.name === "keys").secret.secretName,
    ).toBe(secret?.metadata.name);
    expect(Object.keys(secret?.stringData ?? {})).toEqual(["database-url", "jwt-signing-key.pem"]);
  });

  it("points the Service, PodDisruptionBudget and autoscaler at the Deployment", () => {
    const deployment = byKind("Deployment")[0];
    const labels = deployment?.spec.template.metadata.labels;
    expect(byKind("Service")[0]?.spec.selector).toEqual(labels);
    expect(byKind("PodDisruptionBudget")[0]?.spec.selector.matchLabels).toEqual(labels);
    const autoscaler = byKind("HorizontalPodAutoscaler")[0];
    expect(autoscaler?.spec.scaleTargetRef).toMatchObject({
      kind: "Deployment",
      name: deployment?.metadata.name,
    });
    expect(autoscaler?.spec.minReplicas).toBeGreaterThanOrEqual(2);
  });
});
