// The package's type declarations compile, and say what the code does, for a
// TypeScript app that uses the package as written in its README; they need
// no DOM lib (a Node-only project, against the package as packed); and the
// code cannot drift from them (tsc checks the code against them).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);

/** Runs tsc on a project (its tsconfig.json), failing with what it found. */
function typeCheck(project) {
  const tsc = require.resolve('typescript/bin/tsc');
  try {
    execFileSync(process.execPath, [tsc, '--project', project], { encoding: 'utf8' });
  } catch (error) {
    assert.fail(`tsc found errors:\n${error.stdout}${error.stderr}`);
  }
}

test('an app using every export type-checks against the declarations', () => {
  typeCheck(fileURLToPath(new URL('./types/tsconfig.json', import.meta.url)));
});

test('a Node-only project (no DOM lib) type-checks against the package as packed and installed', (t) => {
  const sdk = fileURLToPath(new URL('..', import.meta.url));
  const app = mkdtempSync(join(tmpdir(), 'chat-types-node-'));
  t.after(() => rmSync(app, { recursive: true, force: true }));
  const npm = (args, cwd) => execFileSync('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd, encoding: 'utf8' });
  const [packed] = JSON.parse(npm(['pack', '--json', '--pack-destination', app], sdk));
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  npm(['install', '--offline', join(app, packed.filename)], app);
  // The project in types-node/ (tsc -p test/types-node checks it against
  // this checkout), with Node's types from here: the app installs only the package.
  const project = JSON.parse(readFileSync(new URL('./types-node/tsconfig.json', import.meta.url), 'utf8'));
  assert.deepEqual(project.compilerOptions.lib, ['ES2022'], 'no DOM');
  project.compilerOptions.typeRoots = [dirname(dirname(require.resolve('@types/node/package.json')))];
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify(project));
  copyFileSync(new URL('./types-node/app.ts', import.meta.url), join(app, 'app.ts'));
  typeCheck(join(app, 'tsconfig.json'));
});

test('the code fits its declarations: every export declared, with the declared types (checkJs)', () => {
  typeCheck(fileURLToPath(new URL('./types-code/tsconfig.json', import.meta.url)));
});
