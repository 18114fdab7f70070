"""The PyTorch network: (optional 1-D conv front end) -> LSTM -> next-sample and max-ahead forecast heads.

Imported only by train/export (needs torch). Shapes: B batch, T time, K conv window, F features,
H hidden, L layers. All inputs are normalised (models.features.normalise).
"""

from __future__ import annotations

import torch
from torch import nn


class FiredampNet(nn.Module):
    """LSTM over the normalised features, with two heads on every step.

    pred:     next sample, as x_t + delta (B, F)
    forecast: max of feature `forecast_index` over the next `horizon` samples, as x_t[fi] + delta (B, 1)
    With `kernel` > 1 a Conv1d over the last `kernel` samples feeds the LSTM (the CNN front end).
    """

    def __init__(self, n_features: int, hidden_size: int = 32, num_layers: int = 1, kernel: int = 1,
                 conv_channels: int = 16, forecast_index: int = 0):
        super().__init__()
        self.n_features, self.hidden_size, self.num_layers = n_features, hidden_size, num_layers
        self.kernel, self.forecast_index = kernel, forecast_index
        if kernel > 1:
            self.conv = nn.Conv1d(n_features, conv_channels, kernel_size=kernel)
            lstm_in = conv_channels + n_features
        else:
            self.conv = None
            lstm_in = n_features
        self.lstm = nn.LSTM(lstm_in, hidden_size, num_layers=num_layers, batch_first=True)
        self.head_pred = nn.Linear(hidden_size, n_features)
        self.head_fc = nn.Linear(hidden_size, 1)

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T + K - 1, F) -> (B, T, F') LSTM inputs; step t sees samples t .. t+K-1 (the last is 'now')."""
        if self.conv is None:
            return x
        feats = torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)  # (B, T, C)
        return torch.cat([feats, x[:, self.kernel - 1:, :]], dim=2)

    def _heads(self, out: torch.Tensor, now: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fi = self.forecast_index
        return now + self.head_pred(out), now[..., fi:fi + 1] + self.head_fc(out)

    def sequence(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None):
        """(B, T + K - 1, F) -> pred (B, T, F), forecast (B, T, 1), (h, c) each (L, B, H)."""
        out, (h, c) = self.lstm(self._inputs(x), state)
        pred, fc = self._heads(out, x[:, self.kernel - 1:, :])
        return pred, fc, (h, c)

    def forward(self, x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor):
        """Streaming step: x (B, K, F) the last K samples; h0, c0 (L, B, H) -> pred, forecast, h1, c1."""
        pred, fc, (h1, c1) = self.sequence(x, (h0, c0))
        return pred[:, -1], fc[:, -1], h1, c1


class Windowed(nn.Module):
    """The windowed form: (B, W, F) -> pred (B, F), forecast (B, 1), the LSTM started from zeros each call."""

    def __init__(self, net: FiredampNet):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor):
        pred, fc, _ = self.net.sequence(x, None)
        return pred[:, -1], fc[:, -1]
