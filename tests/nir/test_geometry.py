"""Conv / pool geometry (spikeship.nir.geometry): odd sizes, strides, paddings, dilations
and groups, with the expected values worked out by hand in the comments."""

import nir
import numpy as np
import pytest

from spikeship.errors import GraphError
from spikeship.nir.geometry import (conv_geometry, conv_params, out_size, pair, pool_out_shape,
                                    pool_params, resolve_padding, spatial_out)


def _conv(out=6, cin_per_group=1, k=(3, 3), stride=(2, 1), padding=(1, 0), dilation=1,
          groups=3):
    return nir.Conv2d(input_shape=(7, 5), weight=np.ones((out, cin_per_group, *k)),
                      stride=stride, padding=padding, dilation=dilation, groups=groups,
                      bias=np.zeros(out))


def test_pair_reads_ints_pairs_and_refuses_the_rest():
    assert pair(3) == (3, 3)
    assert pair(np.array([2, 5])) == (2, 5)
    assert pair(np.array([4.0])) == (4, 4)
    with pytest.raises(GraphError, match="node 'c': stride"):
        pair([0, 1], "stride", "c", 1)
    with pytest.raises(GraphError, match="integers"):
        pair(1.5)
    with pytest.raises(GraphError):
        pair([1, 2, 3])


def test_out_size_is_the_torch_floor_rule():
    # (7 + 1 + 1 - 1*(3-1) - 1) // 2 + 1 = 6 // 2 + 1 = 4
    assert out_size(7, 3, 2, (1, 1)) == 4
    # dilation 2: (7 + 2 - 2*2 - 1) // 2 + 1 = 4 // 2 + 1 = 3
    assert out_size(7, 3, 2, (1, 1), 2) == 3
    # asymmetric padding (0, 1), stride 3: (5 + 1 - 2 - 1) // 3 + 1 = 2
    assert out_size(5, 3, 3, (0, 1)) == 2


def test_resolve_padding_same_valid_pairs_and_errors():
    # same, kernel (3, 4): totals 2 and 3, the smaller half first
    assert resolve_padding("same", (3, 4), (1, 1), (1, 1)) == ((1, 1), (1, 2))
    # dilation 2 on a 3-kernel: total 4
    assert resolve_padding(b"same", (3, 3), (2, 1), (1, 1)) == ((2, 2), (1, 1))
    assert resolve_padding("valid", (5, 5), (1, 1), (2, 2)) == ((0, 0), (0, 0))
    assert resolve_padding([2, 1], (3, 3), (1, 1), (2, 2)) == ((2, 2), (1, 1))
    with pytest.raises(GraphError, match="node 'c': padding 'same' needs stride 1"):
        resolve_padding("same", (3, 3), (1, 1), (2, 1), "c")
    with pytest.raises(GraphError, match="'full'"):
        resolve_padding("full", (3, 3), (1, 1), (1, 1))


def test_conv_params_of_a_grouped_strided_conv():
    p = conv_params("c", _conv())
    assert (p["stride"], p["padding"], p["dilation"], p["groups"]) == ((2, 1), (1, 0), (1, 1), 3)
    assert p["weight"].shape == (6, 1, 3, 3) and p["bias"].tolist() == [0.0] * 6
    same = conv_params("c", _conv(k=(3, 5), stride=1, padding="same"))
    assert same["padding"] == (1, 2)


def test_conv_params_refuse_bad_groups_and_asymmetric_same():
    with pytest.raises(GraphError, match="groups=4 does not divide 6"):
        conv_params("c", _conv(groups=4))
    with pytest.raises(GraphError, match="asymmetric"):
        conv_params("c", _conv(k=(2, 3), stride=1, padding="same"))
    bad = _conv()
    bad.bias = np.zeros(5)
    with pytest.raises(GraphError, match="bias shape"):
        conv_params("c", bad)


def test_conv_geometry_on_an_odd_input():
    # H: (7 + 2 - 2 - 1) // 2 + 1 = 4;  W: (5 + 0 - 2 - 1) // 1 + 1 = 3
    assert conv_geometry((3, 7, 5), (3, 3), (2, 1), (1, 0), 1) == \
        ((4, 3), (2, 1), ((1, 1), (0, 0)), (1, 1))
    with pytest.raises(GraphError, match="empty output"):
        conv_geometry((3, 2, 2), (3, 3), 1, 0, 1)


def test_pool_shapes_and_params():
    # (7 - 2) // 2 + 1 = 3, (9 - 2) // 2 + 1 = 4
    assert pool_out_shape((5, 7, 9), 2, 2, 0) == (5, 3, 4)
    pool = nir.SumPool2d(kernel_size=np.array([3, 2]), stride=np.array([2, 2]),
                         padding=np.array([1, 0]))
    assert pool_params("p", pool) == {"kernel": (3, 2), "stride": (2, 2), "padding": (1, 0)}
    pool.padding = np.array([2, 0])
    with pytest.raises(GraphError, match="more than half the kernel"):
        pool_params("p", pool)


def test_spatial_out_names_the_node_when_the_input_is_too_small():
    # (7 + 2 - 3) // 2 + 1 = 4, (5 - 3) // 1 + 1 = 3
    assert spatial_out("c", (3, 7, 5), (3, 3), (2, 1), (1, 0)) == (4, 3)
    with pytest.raises(GraphError, match="node 'c'.*too small"):
        spatial_out("c", (1, 2, 2), (3, 3), (1, 1), (0, 0))
