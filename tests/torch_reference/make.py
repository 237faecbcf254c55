"""Writes the PyTorch outputs that the tests compare the JAX code against.

CI installs no PyTorch, so the tests read these checked-in files instead of
calling it. Rerun (with torch and numpy installed) only to change a case:

    python tests/torch_reference/make.py

Each file holds the inputs, the weights under PyTorch's own names, and what
PyTorch computes from them.
"""

import os

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def lstm_case(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The zoo LSTM: `nn.LSTM(6, 32, 2)` and a `nn.Linear(32, 6)` readout, on one sequence of 17 steps.

    Weights are normal with std 0.5 (larger than PyTorch's init) so that the gates saturate in places.
    """
    module, readout = torch.nn.LSTM(6, 32, 2), torch.nn.Linear(32, 6)
    tensors = {name: tensor for name, tensor in module.named_parameters()}
    tensors.update(weight_out=readout.weight, bias_out=readout.bias)
    with torch.no_grad():
        for tensor in tensors.values():
            tensor.copy_(torch.from_numpy(rng.normal(0, 0.5, tensor.shape).astype(np.float32)))
        inputs = rng.normal(size=(17, 6)).astype(np.float32)
        hidden, (h, c) = module(torch.from_numpy(inputs)[:, None, :])  # [time, batch 1, ...]
        outputs = readout(hidden)[:, 0]
    return {
        "inputs": inputs,
        "outputs": outputs.numpy(),
        "h": h[:, 0].numpy(),
        "c": c[:, 0].numpy(),
        # PyTorch's flat order: named_parameters() of the LSTM, then the readout's weight and bias.
        "names": np.array(list(tensors)),
        **{f"param/{name}": tensor.detach().numpy() for name, tensor in tensors.items()},
    }


def transformer_layer_case(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """`nn.TransformerEncoderLayer(16, 2, 32)` (post-norm, ReLU) in eval mode on a batch [3, 7, 16]."""
    layer = torch.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.1, batch_first=True).eval()
    with torch.no_grad():
        for tensor in layer.parameters():
            tensor.copy_(torch.from_numpy(rng.normal(0, 0.3, tensor.shape).astype(np.float32)))
        x = rng.normal(size=(3, 7, 16)).astype(np.float32)
        outputs = layer(torch.from_numpy(x))
    return {
        "x": x,
        "outputs": outputs.numpy(),
        **{f"param/{name}": tensor.detach().numpy() for name, tensor in layer.state_dict().items()},
    }


def main() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    for name, case in (("lstm", lstm_case), ("transformer_layer", transformer_layer_case)):
        path = os.path.join(HERE, f"{name}.npz")
        np.savez_compressed(path, torch_version=np.array(torch.__version__), **case(rng))
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
