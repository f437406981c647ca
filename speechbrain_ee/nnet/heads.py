"""CTC exit heads: a Linear + log-softmax per exit (or one shared by all)."""

import torch


class ExitHeads(torch.nn.Module):
    """Linear + log-softmax classifier for each exit.

    Arguments
    ---------
    input_size : int
        Dimension of the exit outputs.
    num_classes : int
        Output vocabulary (blank included).
    num_exits : int
        Number of exits.
    shared : bool
        One head for all exits instead of one per exit (the paper's and our
        default is separate heads).

    Example
    -------
    >>> heads = ExitHeads(16, 10, num_exits=3)
    >>> heads(2, torch.rand(4, 7, 16)).shape
    torch.Size([4, 7, 10])
    >>> len(list(heads.parameters()))
    6
    """

    def __init__(self, input_size, num_classes, num_exits, shared=False):
        super().__init__()
        self.shared = shared
        self.num_exits = num_exits
        count = 1 if shared else num_exits
        self.linears = torch.nn.ModuleList(
            torch.nn.Linear(input_size, num_classes) for _ in range(count)
        )

    def forward(self, exit_index, x):
        """Log-posteriors of exit ``exit_index`` for its outputs ``x``."""
        linear = self.linears[0 if self.shared else exit_index]
        return torch.log_softmax(linear(x), dim=-1)
