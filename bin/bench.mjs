#!/usr/bin/env node
// `npm run bench -- NAME [--json]`: runs bench/NAME.ts, which prints its figures.
import { register } from 'tsx/esm/api';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

register();
const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'bench');
const [name, ...args] = process.argv.slice(2);
const names = readdirSync(dir).filter((f) => f.endsWith('.ts')).map((f) => f.slice(0, -3)).sort();
if (!name || !existsSync(join(dir, `${name}.ts`))) {
  console.error(`usage: npm run bench -- <${names.join('|')}> [--json]`);
  process.exit(2);
}
const bench = await import(join(dir, `${name}.ts`));
await bench.default({ json: args.includes('--json'), args });
