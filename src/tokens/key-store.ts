import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { ConfigError } from "../config.js";
import {
  canSign,
  createKeySet,
  generateEs256Pem,
  type KeySet,
  keyFromPem,
  type SigningKey,
  signingKeyFromPem,
  signingKeyFromSecret,
  type VerificationKey,
} from "./signing-keys.js";

/**
 * A key directory: one PEM file per ES256 key (`*.pem`, private or public) and an optional
 * `active` file holding the kid of the key that signs. Without `active`, the private key whose
 * file name sorts last signs. The embedded default keeps one in `DATA_DIR/keys`; `JWT_KEYS_DIR`
 * points at one that is managed elsewhere (a mounted secret, say).
 */
export const ACTIVE_KEY_FILE = "active";
/** Where the key of versions before key rotation was kept; imported into the store once. */
export const LEGACY_KEY_FILE = "jwt-signing-key.pem";

export interface StoredKey {
  kid: string;
  /** The PEM file's name in the directory. */
  file: string;
  /** True for the key that signs new tokens. */
  active: boolean;
  /** False for a public-only key: it verifies, it can never become active. */
  canSign: boolean;
  /** When the file was written. */
  createTime: Date;
}

export interface KeyStore {
  directory: string;
  /** Every key, oldest first. */
  list(): Promise<StoredKey[]>;
  /**
   * Adds a new key that verifies but does not sign yet (it becomes active only when the
   * store had no key), so verifiers can fetch it before the first token it signs.
   */
  generate(): Promise<StoredKey>;
  /**
   * Makes the newest key generated after the active one the signer, or generates one when
   * there is none. The previous signer stays in the store and keeps verifying.
   */
  rotate(): Promise<{ active: StoredKey; previous: StoredKey | undefined }>;
  /** Deletes a key that no longer signs (once every token it signed has expired). */
  remove(kid: string): Promise<void>;
  /** The keys as a key set; throws ConfigError when none can sign. */
  load(): Promise<KeySet>;
  /** Every key, for verification only. */
  verificationKeys(): Promise<VerificationKey[]>;
}

interface LoadedKey {
  stored: StoredKey;
  key: SigningKey | VerificationKey;
}

/** Writes a file whole or not at all: readers never see half of it. */
async function writeAtomically(file: string, text: string): Promise<void> {
  const temporary = `${file}.${process.pid}.${Date.now()}.tmp`;
  await writeFile(temporary, text, { mode: 0o600 });
  await rename(temporary, file);
}

export function createKeyStore(directory: string): KeyStore {
  const activeFile = path.join(directory, ACTIVE_KEY_FILE);

  async function readActiveKid(): Promise<string | undefined> {
    try {
      return (await readFile(activeFile, "utf8")).trim() || undefined;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") {
        return undefined;
      }
      throw error;
    }
  }

  async function readKeys(): Promise<LoadedKey[]> {
    let names: string[];
    try {
      names = (await readdir(directory)).filter((name) => name.endsWith(".pem")).sort();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") {
        return [];
      }
      throw new ConfigError(`key directory cannot be read: ${directory}`, { cause: error });
    }
    const loaded = await Promise.all(
      names.map(async (file) => {
        const fullPath = path.join(directory, file);
        const [pem, stats] = await Promise.all([readFile(fullPath, "utf8"), stat(fullPath)]);
        const key = keyFromPem(pem, fullPath);
        return { file, key, createTime: stats.mtime };
      }),
    );
    const activeKid =
      (await readActiveKid()) ?? loaded.filter(({ key }) => canSign(key)).at(-1)?.key.kid;
    return loaded
      .map(({ file, key, createTime }) => ({
        key,
        stored: {
          kid: key.kid,
          file,
          active: key.kid === activeKid && canSign(key),
          canSign: canSign(key),
          createTime,
        },
      }))
      .sort((a, b) => a.stored.createTime.getTime() - b.stored.createTime.getTime());
  }

  async function addKey(pem: string): Promise<StoredKey> {
    await mkdir(directory, { recursive: true, mode: 0o700 });
    const key = signingKeyFromPem(pem, "generated key");
    const file = `${key.kid}.pem`;
    await writeFile(path.join(directory, file), pem, { flag: "wx", mode: 0o600 });
    return {
      kid: key.kid,
      file,
      active: false,
      canSign: true,
      createTime: (await stat(path.join(directory, file))).mtime,
    };
  }

  async function activate(kid: string): Promise<void> {
    await writeAtomically(activeFile, `${kid}\n`);
  }

  return {
    directory,

    list: async () => (await readKeys()).map(({ stored }) => stored),

    async generate() {
      const hadKeys = (await readKeys()).length > 0;
      const added = await addKey(generateEs256Pem());
      if (!hadKeys) {
        try {
          // "wx": a replica starting at the same moment keeps the key activated first.
          await writeFile(activeFile, `${added.kid}\n`, { flag: "wx", mode: 0o600 });
          return { ...added, active: true };
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== "EEXIST") {
            throw error;
          }
        }
      }
      return added;
    },

    async rotate() {
      const keys = (await readKeys()).map(({ stored }) => stored);
      const previous = keys.find((key) => key.active);
      const candidate = keys
        .filter(
          (key) =>
            key.canSign &&
            !key.active &&
            (previous === undefined || key.createTime >= previous.createTime),
        )
        .at(-1);
      const next = candidate ?? (await addKey(generateEs256Pem()));
      await activate(next.kid);
      return { active: { ...next, active: true }, previous };
    },

    async remove(kid) {
      const key = (await readKeys()).find((entry) => entry.stored.kid === kid);
      if (key === undefined) {
        throw new ConfigError(`no key with kid ${kid} in ${directory}`);
      }
      if (key.stored.active) {
        throw new ConfigError(`key ${kid} signs new tokens; rotate before removing it`);
      }
      await rm(path.join(directory, key.stored.file));
    },

    verificationKeys: async () => (await readKeys()).map(({ key }) => key),

    async load() {
      const keys = await readKeys();
      const signer = keys.find(({ stored }) => stored.active)?.key;
      if (signer === undefined || !canSign(signer)) {
        throw new ConfigError(`no private key to sign with in ${directory}`);
      }
      return createKeySet(
        signer,
        keys.map(({ key }) => key),
      );
    },
  };
}

export interface KeySetSource {
  jwtSecret: string | undefined;
  jwtPrivateKeyPem: string | undefined;
  jwtPrivateKeyFile: string | undefined;
  /** A key directory managed elsewhere (see ACTIVE_KEY_FILE). */
  jwtKeysDir: string | undefined;
  dataDir: string | undefined;
}

/** The key directory the `keys` commands manage: JWT_KEYS_DIR, else DATA_DIR/keys. */
export function keyStoreDirectory(
  source: Pick<KeySetSource, "jwtKeysDir" | "dataDir">,
): string | undefined {
  if (source.jwtKeysDir !== undefined) {
    return source.jwtKeysDir;
  }
  return source.dataDir === undefined ? undefined : path.join(source.dataDir, "keys");
}

async function readKeyFile(file: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    throw new ConfigError(`JWT_PRIVATE_KEY_FILE cannot be read: ${file}`, { cause: error });
  }
}

/**
 * The embedded default: the key store in DATA_DIR/keys, created with one key on first start.
 * A key written by an older version to DATA_DIR/jwt-signing-key.pem becomes its first key.
 */
async function loadEmbeddedKeySet(dataDir: string): Promise<KeySet> {
  const store = createKeyStore(path.join(dataDir, "keys"));
  if ((await store.list()).length === 0) {
    let legacyPem: string | undefined;
    try {
      legacyPem = await readFile(path.join(dataDir, LEGACY_KEY_FILE), "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") {
        throw error;
      }
    }
    if (legacyPem === undefined) {
      await store.generate();
    } else {
      const key = signingKeyFromPem(legacyPem, LEGACY_KEY_FILE);
      await mkdir(store.directory, { recursive: true, mode: 0o700 });
      await writeFile(path.join(store.directory, `${key.kid}.pem`), legacyPem, { mode: 0o600 });
      await writeFile(path.join(store.directory, ACTIVE_KEY_FILE), `${key.kid}\n`, { mode: 0o600 });
    }
  }
  return store.load();
}

/**
 * The service's keys. The signer is the first that is set of: JWT_SECRET (HS256),
 * JWT_PRIVATE_KEY, JWT_PRIVATE_KEY_FILE, the active key of JWT_KEYS_DIR, the key store in
 * DATA_DIR. Every key in JWT_KEYS_DIR verifies as well, so a retired key keeps verifying
 * the tokens it signed until they expire.
 */
export async function loadKeySet(source: KeySetSource): Promise<KeySet> {
  if (source.jwtSecret !== undefined) {
    return createKeySet(signingKeyFromSecret(source.jwtSecret));
  }
  const directory = source.jwtKeysDir === undefined ? undefined : createKeyStore(source.jwtKeysDir);
  let signer: SigningKey | undefined;
  if (source.jwtPrivateKeyPem !== undefined) {
    signer = signingKeyFromPem(source.jwtPrivateKeyPem, "JWT_PRIVATE_KEY");
  } else if (source.jwtPrivateKeyFile !== undefined) {
    signer = signingKeyFromPem(await readKeyFile(source.jwtPrivateKeyFile), "JWT_PRIVATE_KEY_FILE");
  }
  if (directory !== undefined) {
    if (signer === undefined) {
      return directory.load();
    }
    return createKeySet(signer, await directory.verificationKeys());
  }
  if (signer !== undefined) {
    return createKeySet(signer);
  }
  if (source.dataDir === undefined) {
    return createKeySet(signingKeyFromPem(generateEs256Pem(), "generated key"));
  }
  return loadEmbeddedKeySet(source.dataDir);
}
