// `node --import ./bench/register.mjs bench/run.ts`: run the bench's TypeScript in place (see ts-hooks.mjs).
import { register } from 'node:module';

register('./ts-hooks.mjs', import.meta.url);
