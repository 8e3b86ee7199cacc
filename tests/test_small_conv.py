"""The GEMM path of the small-map convolutions equals the library convolution, values and gradients."""
import pytest
import torch
import torch.nn.functional as F

from condgan.nets.small_conv import SMALL, Conv4x2, ConvT4x2

SHAPES = [(1, 2, 2, False), (3, 8, 8, True), (2, 4, 6, False), (1, 3, 5, True)]


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("cls, n, h, w, bias", [(Conv4x2, *s) for s in SHAPES]
                         + [(ConvT4x2, *s) for s in SHAPES + [(2, 1, 1, True)]])
def test_gemm_path_matches_library_convolution(cls, n, h, w, bias, layout):
    torch.manual_seed(0)
    m = cls(12, 10, bias=bias).double().to(memory_format=layout)
    if bias:
        torch.nn.init.normal_(m.bias)
    x = torch.randn(n, 12, h, w, dtype=torch.double).contiguous(memory_format=layout).requires_grad_()
    assert h * w <= SMALL  # so forward takes the GEMM path
    y = m(x)
    conv = F.conv2d if cls is Conv4x2 else F.conv_transpose2d
    ref = conv(x, m.weight, m.bias, stride=2, padding=1)
    torch.testing.assert_close(y, ref)
    g = torch.randn_like(y)
    gx, gw = torch.autograd.grad(y, (x, m.weight), g)
    rx, rw = torch.autograd.grad(ref, (x, m.weight), g)
    torch.testing.assert_close(gx, rx)
    torch.testing.assert_close(gw, rw)
    # a channels-last weight is read in place: its gradient comes back channels-last, with nothing to copy
    assert gw.is_contiguous(memory_format=layout)


def test_large_maps_use_the_library_path_with_the_same_result():
    m = ConvT4x2(4, 3)
    x = torch.randn(2, 4, 16, 16)  # 256 > SMALL
    torch.testing.assert_close(m(x), F.conv_transpose2d(x, m.weight, m.bias, stride=2, padding=1))


def test_state_dict_keys_match_the_library_modules():
    assert Conv4x2(3, 5).state_dict().keys() == torch.nn.Conv2d(3, 5, 4, 2, 1).state_dict().keys()
    assert ConvT4x2(3, 5, bias=False).state_dict().keys() == \
        torch.nn.ConvTranspose2d(3, 5, 4, 2, 1, bias=False).state_dict().keys()
