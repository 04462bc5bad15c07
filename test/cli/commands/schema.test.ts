// The shipped JSON Schema is the one the CLI checks with, and every shipped
// scenario points editors at it and opens with a comment saying what it shows.
import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { SCHEMA_FILE, schemaText } from '../../../cli/commands/schema.ts';

const files = readdirSync('scenarios').filter((f) => f.endsWith('.yaml')).map((f) => `scenarios/${f}`);

describe('scenarios/latsim.schema.json', () => {
  it('is what `latsim schema --write` writes (regenerate it after changing sim/scenario/)', () => {
    expect(readFileSync(SCHEMA_FILE, 'utf8')).toBe(schemaText());
  });

  it('accepts every shipped scenario, each with a modeline and a comment header', () => {
    const validate = new Ajv({ strict: false }).compile(JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')));
    for (const f of files) {
      const text = readFileSync(f, 'utf8');
      expect(text.split('\n')[0], f).toBe('# yaml-language-server: $schema=./latsim.schema.json');
      expect(text.split('\n').slice(1, 4).filter((l) => l.startsWith('# ')).length, `${f} says what it shows`).toBeGreaterThan(0);
      expect(validate(parse(text)), `${f}: ${JSON.stringify(validate.errors)}`).toBe(true);
    }
  });
});
