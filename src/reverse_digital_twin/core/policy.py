"""A trained policy as plain numpy: what a robot runs without the library that trained it.

Training (reverse_digital_twin.train, Stable-Baselines3 on PyTorch) exports its network to an
``.npz`` file; the policy node, the tests and the demo load it here with numpy alone, so a
robot's computer needs neither torch nor the training library.

File format (``numpy.savez``; every key a numpy array):

- ``W0, b0, W1, b1, ...``: dense layers in order, ``y = x @ W_k + b_k`` (``W_k`` of shape
  (inputs, outputs)); every layer but the last is followed by the activation;
- ``activation``: its name, one of :data:`ACTIVATIONS` (a 0-d string array);
- ``obs_mean``, ``obs_std``: the observation normalisation the network was trained with:
  ``x = clip((observation - obs_mean) / obs_std, -obs_clip, obs_clip)``;
- ``meta``: a JSON string: ``robot``, ``joints``, ``control_rate`` and ``task`` (what rebuilds
  the :class:`~reverse_digital_twin.core.reach_task.ReachTask`), ``obs_clip``, and
  ``training`` (library, algorithm, steps, minutes, success rate, ...).

:meth:`Policy.act` returns the deterministic action: the network's output (the mean of the
trained Gaussian policy) clipped to [-1, 1], the action space.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from reverse_digital_twin.core.reach_task import ReachTask

ACTIVATIONS = {
    'tanh': np.tanh,
    'relu': lambda x: np.maximum(x, 0.0),
    'elu': lambda x: np.where(x > 0.0, x, np.expm1(np.minimum(x, 0.0))),
    'identity': lambda x: x,
}
#: Normalised observations are clipped to +- this unless the file says otherwise
#: (Stable-Baselines3's VecNormalize default).
DEFAULT_OBS_CLIP = 10.0


class PolicyFileError(ValueError):
    """A policy file that cannot be used, with the reason."""


class Policy:
    """A dense feed-forward policy: normalise, layers, clip.

    Args:
        weights: per layer, W (inputs, outputs) and b (outputs,).
        activation: applied after every layer but the last (a key of :data:`ACTIVATIONS`).
        obs_mean, obs_std: observation normalisation.
        meta: what the file records about the task and the training.
    """

    def __init__(self, weights: Sequence[tuple[np.ndarray, np.ndarray]], activation: str,
                 obs_mean: np.ndarray, obs_std: np.ndarray,
                 meta: Mapping[str, Any] | None = None) -> None:
        if activation not in ACTIVATIONS:
            raise PolicyFileError(f'activation {activation!r} unknown; known: '
                                  f'{sorted(ACTIVATIONS)}')
        if not weights:
            raise PolicyFileError('a policy needs at least one layer')
        self.weights = [(np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64))
                        for w, b in weights]
        size = self.weights[0][0].shape[0]
        for k, (w, b) in enumerate(self.weights):
            if w.ndim != 2 or w.shape[0] != size or b.shape != (w.shape[1],):
                raise PolicyFileError(f'layer {k}: W {w.shape} and b {b.shape} do not chain '
                                      f'from {size} inputs')
            size = w.shape[1]
        self.activation = activation
        self.obs_mean = np.asarray(obs_mean, dtype=np.float64)
        self.obs_std = np.asarray(obs_std, dtype=np.float64)
        n = self.observation_size
        if self.obs_mean.shape != (n,) or self.obs_std.shape != (n,):
            raise PolicyFileError(f'obs_mean {self.obs_mean.shape} and obs_std '
                                  f'{self.obs_std.shape} must have the {n} inputs of W0')
        if not np.all(self.obs_std > 0):
            raise PolicyFileError('obs_std must be > 0 everywhere')
        self.meta: dict[str, Any] = dict(meta or {})
        self.obs_clip = float(self.meta.get('obs_clip', DEFAULT_OBS_CLIP))
        self._act = ACTIVATIONS[activation]

    @property
    def observation_size(self) -> int:
        return int(self.weights[0][0].shape[0])

    @property
    def action_size(self) -> int:
        return int(self.weights[-1][0].shape[1])

    def act(self, observation: np.ndarray) -> np.ndarray:
        """The deterministic action (float32 in [-1, 1]) for one observation (or a batch of
        them, one per row)."""
        x = np.asarray(observation, dtype=np.float64)
        if x.shape[-1] != self.observation_size:
            raise ValueError(f'observation: expected {self.observation_size} values, got shape '
                             f'{x.shape}')
        x = np.clip((x - self.obs_mean) / self.obs_std, -self.obs_clip, self.obs_clip)
        last = len(self.weights) - 1
        for k, (w, b) in enumerate(self.weights):
            x = x @ w + b
            if k < last:
                x = self._act(x)
        return np.clip(x, -1.0, 1.0).astype(np.float32)

    def task(self) -> 'ReachTask':
        """The reaching task this policy was trained for (from its meta)."""
        from reverse_digital_twin.core.reach_task import ReachTask  # noqa: PLC0415
        return ReachTask.from_meta(self.meta)

    # --- files ----------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the ``.npz`` file (float32 weights: half the size, numpy computes in float64
        anyway)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        for k, (w, b) in enumerate(self.weights):
            arrays[f'W{k}'] = w.astype(np.float32)
            arrays[f'b{k}'] = b.astype(np.float32)
        meta = {**self.meta, 'obs_clip': self.obs_clip}
        with path.open('wb') as f:  # a file object: savez would append .npz to the name
            np.savez(f, activation=np.array(self.activation), obs_mean=self.obs_mean,
                     obs_std=self.obs_std, meta=np.array(json.dumps(meta, sort_keys=True)),
                     **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> 'Policy':
        """Read a policy file (see the module docstring).

        Raises:
            PolicyFileError: missing file or key, layers that do not chain, bad meta.
        """
        path = Path(path)
        if not path.is_file():
            raise PolicyFileError(f'policy file not found: {path}')
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise PolicyFileError(f'{path}: not a policy file (.npz): {exc}') from None
        with data:
            keys = set(data.files)
            missing = sorted({'W0', 'b0', 'activation', 'obs_mean', 'obs_std', 'meta'} - keys)
            if missing:
                raise PolicyFileError(f'{path}: missing keys {missing}')
            weights = []
            k = 0
            while f'W{k}' in keys:
                if f'b{k}' not in keys:
                    raise PolicyFileError(f'{path}: W{k} without b{k}')
                weights.append((data[f'W{k}'], data[f'b{k}']))
                k += 1
            try:
                meta = json.loads(str(data['meta']))
            except ValueError as exc:
                raise PolicyFileError(f'{path}: meta is not JSON: {exc}') from None
            if not isinstance(meta, dict):
                raise PolicyFileError(f'{path}: meta must be a JSON object')
            try:
                return cls(weights, str(data['activation']), data['obs_mean'],
                           data['obs_std'], meta)
            except PolicyFileError as exc:
                raise PolicyFileError(f'{path}: {exc}') from None
