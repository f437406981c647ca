"""Gradient equilibrium (Li et al. 2019, "Improved Techniques for Training
Adaptive Deep Networks", ICCV, Sec. 3.1) for multi-exit encoders.

Trained with the sum of the exits' losses, a layer below exit ``i`` gets the
gradients of every loss from exit ``i`` up: the shallow layers of a six-exit
model take the sum of six gradients, and the losses of the exits above
dominate what the layers between two exits learn. Gradient equilibrium
rescales the gradients at each exit's branch point, where the states go both
to the exit's head and on to the next layers, with two identity operations
(:func:`scale_gradient`).

With ``n`` exits and exit ``i`` (1-based, as in the paper), the gradient
that reaches the states at the branch point is::

    g = g_exit / (n - i + 1) + (n - i) / (n - i + 1) * g_above

``g_exit``: the gradient of exit ``i``'s own loss (through its norm and
head); ``g_above``: the gradient from the layers above (the losses of exits
``i + 1 .. n``). ``g`` is a convex combination, so no layer's gradient grows
with the number of exits above it: unrolled, each of the ``n - i + 1``
losses that reach the layers below exit ``i`` does so with weight
``1 / (n - i + 1)`` (times the Jacobians of the layers on its way), and the
layers below the first exit get the mean of all ``n`` losses' gradients
rather than their sum. The head of each exit still gets its own loss's full
gradient, and the top exit's branch point is unchanged (``1 / 1``).

As in the paper's code, it is two rescaling operations per branch point:
``branch = scale_gradient(h, 1 / (n - i + 1))`` feeds the exit,
``carried = scale_gradient(branch, n - i)`` the layers above.
"""

import torch


class ScaleGradient(torch.autograd.Function):
    """Identity in the forward pass; multiplies the gradient by ``scale`` in
    the backward pass.

    Example
    -------
    >>> x = torch.ones(3, requires_grad=True)
    >>> ScaleGradient.apply(x, 0.25).sum().backward()
    >>> x.grad
    tensor([0.2500, 0.2500, 0.2500])
    """

    @staticmethod
    def forward(ctx, x, scale):
        """Returns ``x`` (a view, so autograd records this node)."""
        ctx.scale = float(scale)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output):
        """The incoming gradient times ``scale`` (no gradient for ``scale``)."""
        return grad_output * ctx.scale, None


def scale_gradient(x, scale):
    """``x`` unchanged, its gradient multiplied by ``scale`` (a float >= 0).

    Example
    -------
    >>> x = torch.tensor([1.0, 2.0], requires_grad=True)
    >>> y = scale_gradient(x, 3.0)
    >>> torch.equal(y, x)
    True
    >>> (2 * y).sum().backward(); x.grad
    tensor([6., 6.])
    """
    return ScaleGradient.apply(x, scale)


def equilibrium_branch(hidden, exit_index, num_exits):
    """The two paths of exit ``exit_index``'s branch point (see the module
    docstring): ``(branch, carried)``, both equal to ``hidden``. ``branch``
    feeds the exit (its gradient times ``1 / (n - i)`` with the 0-based
    index ``i``, i.e. ``1 / (n - i + 1)`` 1-based), ``carried`` the layers
    above (their gradient times ``(n - i - 1) / (n - i)``). At the top exit
    both are ``hidden``.

    Arguments
    ---------
    hidden : torch.Tensor
        The states after the exit's layer.
    exit_index : int
        0-based exit index.
    num_exits : int
        Number of exits ``n`` whose losses are trained.

    Example
    -------
    >>> h = torch.ones(2, requires_grad=True)
    >>> branch, carried = equilibrium_branch(h, 0, 4)
    >>> (branch.sum() + carried.sum()).backward()  # one unit of gradient on each path
    >>> h.grad  # 1/4 from the exit, 3/4 from above
    tensor([1., 1.])
    >>> h.grad = None
    >>> branch, carried = equilibrium_branch(h, 0, 4)
    >>> branch.sum().backward(); h.grad
    tensor([0.2500, 0.2500])
    """
    if not 0 <= exit_index < num_exits:
        raise ValueError(f"exit index {exit_index} outside 0..{num_exits - 1}")
    above = num_exits - exit_index - 1  # exits above this one
    if above == 0:
        return hidden, hidden
    branch = scale_gradient(hidden, 1.0 / (above + 1))
    return branch, scale_gradient(branch, above)
