/**
 * The sync decision table (src/core/plan.ts), row by row, without processes: every combination of
 * where the local copy lives, how its content compares, the sync base, tombstones and flags.
 */
import { describe, expect, it } from 'vitest';
import { decideCarry, decidePull, decidePush, type PullFacts, type PushFacts } from '../../src/core/plan.js';

const here = { place: 'here' as const, directory: '/w/app', boundElsewhere: false };
const same = { equalsBase: true, equalsRemote: true };
const localMoved = { equalsBase: false, equalsRemote: false };
const remoteMovedOnly = { equalsBase: true, equalsRemote: false };
const base = (remoteChanged: boolean) => ({ base: { remoteChanged } });
const facts = (f: Partial<PullFacts>): PullFacts => ({ belongs: { here: true }, explicit: false, force: false, keepLocal: false, ...f });

describe('decidePull: sessions of the checkpoint', () => {
  const rows: [string, PullFacts, string][] = [
    ['absent, never synced, belongs here → new', facts({}), 'new'],
    ['absent, never synced, belongs to another checkout → other-checkout', facts({ belongs: { here: false, where: 'the checkout /w/app-wt' } }), 'other-checkout'],
    ['absent, another checkout, named with --session → new', facts({ belongs: { here: false, where: 'x' }, explicit: true }), 'new'],
    ['absent, synced before, remote unchanged → deleted-here (no resurrection)', facts(base(false)), 'deleted-here'],
    ['absent, synced before, remote changed → conflict', facts(base(true)), 'conflict'],
    ['absent, synced before, remote changed, --force → new', facts({ ...base(true), force: true }), 'new'],
    ['absent, synced before, remote changed, --keep-local → deleted-here', facts({ ...base(true), keepLocal: true }), 'deleted-here'],
    ['absent, synced before, named with --session → new', facts({ ...base(false), explicit: true }), 'new'],
    ['here, same content → unchanged', facts({ ...base(false), local: { ...here, content: same } }), 'unchanged'],
    ['here, same content, other subfolder → replace (rebind)', facts({ ...base(false), local: { ...here, boundElsewhere: true, content: same } }), 'replace'],
    ['here, unchanged since base, remote changed → replace', facts({ ...base(true), local: { ...here, content: remoteMovedOnly } }), 'replace'],
    ['here, changed here, remote unchanged → keep-local', facts({ ...base(false), local: { ...here, content: localMoved } }), 'keep-local'],
    ['here, changed on both sides → conflict', facts({ ...base(true), local: { ...here, content: localMoved } }), 'conflict'],
    ['here, changed on both sides, --force → replace', facts({ ...base(true), force: true, local: { ...here, content: localMoved } }), 'replace'],
    ['here, changed on both sides, --keep-local → keep-local', facts({ ...base(true), keepLocal: true, local: { ...here, content: localMoved } }), 'keep-local'],
    ['here, never synced, differs → conflict', facts({ local: { ...here, content: localMoved } }), 'conflict'],
    ['in another live checkout → other-checkout (never moved)', facts({ ...base(true), local: { ...here, place: 'other-checkout', content: localMoved } }), 'other-checkout'],
    ['in another live checkout, same content → other-checkout', facts({ local: { ...here, place: 'other-checkout', content: same } }), 'other-checkout'],
    ['in another live checkout, handed over / --session → replace (moved here)', facts({ explicit: true, local: { ...here, place: 'other-checkout', content: same } }), 'replace'],
    ['in a folder that is gone, same content → replace (rebind a moved repo)', facts({ local: { ...here, place: 'gone-folder', content: same } }), 'replace'],
    ['in a folder that is gone, remote changed → replace', facts({ ...base(true), local: { ...here, place: 'gone-folder', content: remoteMovedOnly } }), 'replace'],
    ['in a folder that is gone, changed here only → keep-local', facts({ ...base(false), local: { ...here, place: 'gone-folder', content: localMoved } }), 'keep-local'],
  ];
  it.each(rows)('%s', (_name, input, action) => {
    expect(decidePull(input).action).toBe(action);
  });

  it('names the other checkout in the reason', () => {
    expect(decidePull(facts({ local: { ...here, place: 'other-checkout', directory: '/w/app-wt', content: same } })).reason).toContain('/w/app-wt');
  });
});

describe('decidePull: tombstones (deleted on another host)', () => {
  const tombstone = { by: 'laptop', deletedAt: '2026-11-29T00:00:00.000Z' };
  const rows: [string, PullFacts, string][] = [
    ['not here → nothing to do', facts({ tombstone }), 'unchanged'],
    ['here, equal to what was deleted → deleted-there', facts({ tombstone, local: { ...here, content: { equalsBase: false, equalsRemote: true } } }), 'deleted-there'],
    ['here, unchanged since the sync base → deleted-there', facts({ tombstone, ...base(true), local: { ...here, content: { equalsBase: true, equalsRemote: false } } }), 'deleted-there'],
    ['here, changed since → conflict', facts({ tombstone, ...base(true), local: { ...here, content: localMoved } }), 'conflict'],
    ['here, changed since, --force → deleted-there', facts({ tombstone, ...base(true), force: true, local: { ...here, content: localMoved } }), 'deleted-there'],
    ['here, changed since, --keep-local → keep-local', facts({ tombstone, ...base(true), keepLocal: true, local: { ...here, content: localMoved } }), 'keep-local'],
    ['in another checkout → other-checkout (that checkout removes it)', facts({ tombstone, local: { ...here, place: 'other-checkout', content: same } }), 'other-checkout'],
  ];
  it.each(rows)('%s', (_name, input, action) => {
    expect(decidePull(input).action).toBe(action);
  });
});

describe('decidePush', () => {
  const p = (f: Partial<PushFacts>): PushFacts => ({ unchangedSinceBase: false, hasBase: true, tombstoned: false, force: false, ...f });
  const exported = (equalsBase: boolean, equalsRemote: boolean, equalsTombstone = false) => ({ exported: { equalsBase, equalsRemote, equalsTombstone } });
  const rows: [string, PushFacts, string][] = [
    ['unchanged since base, remote unchanged → reused (no export)', p({ unchangedSinceBase: true, remote: { changedSinceBase: false } }), 'reused'],
    ['unchanged since base, remote changed → remote-newer', p({ unchangedSinceBase: true, remote: { changedSinceBase: true } }), 'remote-newer'],
    ['unchanged since base, not in the remote → export', p({ unchangedSinceBase: true }), 'export'],
    ['changed → export first', p({ remote: { changedSinceBase: false } }), 'export'],
    ['exported, not in the remote → pushed', p({ ...exported(false, false) }), 'pushed'],
    ['exported, remote still the base → pushed', p({ ...exported(false, false), remote: { changedSinceBase: false } }), 'pushed'],
    ['exported, equal to the remote → pushed', p({ ...exported(false, true), remote: { changedSinceBase: true } }), 'pushed'],
    ['exported, remote changed too → conflict', p({ ...exported(false, false), remote: { changedSinceBase: true } }), 'conflict'],
    ['exported, remote changed too, --force → pushed', p({ ...exported(false, false), remote: { changedSinceBase: true }, force: true }), 'pushed'],
    ['never synced, differs from the remote → conflict', p({ hasBase: false, ...exported(false, false), remote: { changedSinceBase: true } }), 'conflict'],
    ['tombstoned, unchanged since base → deleted-there (not resurrected)', p({ tombstoned: true, unchangedSinceBase: true }), 'deleted-there'],
    ['tombstoned, exported equal to what was deleted → deleted-there', p({ tombstoned: true, hasBase: false, ...exported(false, false, true) }), 'deleted-there'],
    ['tombstoned, changed since → conflict', p({ tombstoned: true, ...exported(false, false, false) }), 'conflict'],
    ['tombstoned, changed since, --force → pushed (resurrected on purpose)', p({ tombstoned: true, force: true, ...exported(false, false, false) }), 'pushed'],
    ['tombstoned, unchanged, --force → export, then pushed', p({ tombstoned: true, force: true, unchangedSinceBase: true }), 'export'],
    ['tombstoned, unchanged, exported, --force → pushed', p({ tombstoned: true, force: true, ...exported(true, false, true) }), 'pushed'],
  ];
  it.each(rows)('%s', (_name, input, action) => {
    expect(decidePush(input)).toBe(action);
  });
});

describe('decideCarry: sessions push does not export', () => {
  const rows: [string, Parameters<typeof decideCarry>[0], string][] = [
    ['still on this host (another checkout) → carry', { presentOnThisHost: true, hasBase: true, remoteChangedSinceBase: false, force: false }, 'carry'],
    ['never on this host → carry', { presentOnThisHost: false, hasBase: false, remoteChangedSinceBase: false, force: false }, 'carry'],
    ['synced here, gone now, remote unchanged → tombstone', { presentOnThisHost: false, hasBase: true, remoteChangedSinceBase: false, force: false }, 'tombstone'],
    ['synced here, gone now, remote changed since → conflict', { presentOnThisHost: false, hasBase: true, remoteChangedSinceBase: true, force: false }, 'conflict'],
    ['synced here, gone now, remote changed since, --force → tombstone', { presentOnThisHost: false, hasBase: true, remoteChangedSinceBase: true, force: true }, 'tombstone'],
  ];
  it.each(rows)('%s', (_name, input, action) => {
    expect(decideCarry(input)).toBe(action);
  });
});
