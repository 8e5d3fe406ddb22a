import { describe, expect, it } from 'vitest';
import { isJobFile, jobBaseName } from '../src/model/params';

describe('the files "Run as training job" runs', () => {
  it('takes notebooks and Python scripts, nothing else', () => {
    expect(isJobFile('nbs/train.ipynb')).toBe(true);
    expect(isJobFile('scripts/train.py')).toBe(true);
    expect(isJobFile('train.py')).toBe(true);
    for (const path of ['notes.txt', 'data.pyc', 'train.py.bak', 'nbs/.py', 'TRAIN.PY', 'a.ipynb/']) {
      expect(isJobFile(path), path).toBe(false);
    }
  });

  it('names a job after its file, without the extension', () => {
    expect(jobBaseName('nbs/train.ipynb')).toBe('train');
    expect(jobBaseName('scripts/fine.tune.py')).toBe('fine.tune');
    expect(jobBaseName('plain')).toBe('plain');
  });
});
