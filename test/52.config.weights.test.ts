// hosts[].weight (issue 13): read, checked and defaulted by the configuration.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clusterConfig } from './support/configs';
import { load, refuses } from './support/config-checks';


function withWeights(weights: ReadonlyArray<unknown>): Record<string, unknown> {
  const c = clusterConfig(0, { hosts: weights.length });
  c.hosts = (c.hosts as Array<Record<string, unknown>>).map((h, i) => (weights[i] === undefined ? h : { ...h, weight: weights[i] }));
  return c;
}

test('52.config.weights: a host without weight gets weight 1, and weight 1 may be written out', () => {
  const c = load(withWeights([undefined, 1, undefined]));
  assert.deepEqual(c.hosts.map((h) => h.weight), [1, 1, 1]);
  assert.ok(Object.isFrozen(c.hosts[0]));
});

test('52.config.weights: a weight that is no integer in 0..100 names the host entry and the range', () => {
  for (const w of [-1, 1.5, 101, '2', null, true]) {
    refuses(withWeights([1, w]), 'hosts', /hosts\[1\]\.weight must be an integer 0\.\.100 \(0: no new connections\)/);
  }
  refuses(withWeights([1, 1]), 'hosts', /hosts\[1\]\.weight must be an integer 0\.\.100/, { DPR_HOSTS: JSON.stringify([{ id: 0, service: '198.18.0.1', cluster: '198.18.0.1' }, { id: 1, service: '198.18.0.2', cluster: '198.18.0.2', weight: 500 }]) });
});

test('52.config.weights: weight 0 on every host is refused: nobody would take new connections', () => {
  refuses(withWeights([0, 0, 0]), 'hosts', /every host has weight 0/);
});

test('52.config.weights: other weights, 0 included, are taken as written', () => {
  assert.deepEqual(load(withWeights([1, 2, 1])).hosts.map((h) => h.weight), [1, 2, 1]);
  assert.deepEqual(load(withWeights([0, 100])).hosts.map((h) => h.weight), [0, 100]);
});
