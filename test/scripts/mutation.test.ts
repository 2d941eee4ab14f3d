import { judge, scores } from '../../scripts/mutation';

/** `npm run test:mutation` fails when any one module is under its bar, however strong the others. */
const report = (files: Record<string, string[]>) => ({
  files: Object.fromEntries(Object.entries(files).map(([f, statuses]) => [f, { mutants: statuses.map((status) => ({ status })) }])),
});

test('the score: killed and timed out over valid mutants; compile and runtime errors and ignored mutants do not count', () => {
  const r = report({ 'a.ts': ['Killed', 'Timeout', 'Survived', 'NoCoverage', 'CompileError', 'RuntimeError', 'Ignored'] });
  expect(scores(r)).toEqual([{ file: 'a.ts', score: 50, detected: 2, valid: 4 }]);
  expect(scores(report({ 'none.ts': ['Ignored'] }))[0].score).toBe(100);
});

test('one module below the threshold fails the run; exactly at it passes', () => {
  const strong = Array<string>(99).fill('Killed');
  const atBar = [...Array<string>(9).fill('Killed'), 'Survived'];
  const below = [...Array<string>(8).fill('Killed'), 'Survived', 'NoCoverage'];
  expect(judge(report({ 'strong.ts': strong, 'bar.ts': atBar }), 90).ok).toBe(true);
  const failing = judge(report({ 'strong.ts': strong, 'weak.ts': below }), 90);
  expect(failing.ok).toBe(false);
  expect(failing.lines).toEqual([
    'ok   strong.ts                    100.00 % (99/99, threshold 90 %)',
    'FAIL weak.ts                       80.00 % (8/10, threshold 90 %)',
  ]);
  expect(judge(report({ 'weak.ts': below }), 80).ok).toBe(true);
});
