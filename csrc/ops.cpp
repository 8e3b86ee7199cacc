// Operator schemas of the condgan extension. Kernels register per device in
// csrc/cpu and csrc/cuda; the Python side (condgan/ops) adds fake-tensor and
// autograd rules, so these ops work under torch.compile and opcheck.
#include <torch/library.h>

TORCH_LIBRARY(condgan, m) {
  // Fake-tensor and autograd rules live in this Python module.
  m.set_python_module("condgan.ops._registration");
  // y = gain * leaky_relu(x + bias), bias broadcast along `dim`.
  m.def("bias_leaky_relu(Tensor x, Tensor? bias, float negative_slope, float gain, int dim) -> Tensor");
  // Gradient from the saved output y alone (x is never re-read). Returns
  // (grad_x, grad_bias); grad_bias has shape [size(dim)] when bias_grad is
  // set and shape [0] otherwise.
  m.def("bias_leaky_relu_backward(Tensor grad_y, Tensor y, float negative_slope, float gain, int dim, bool bias_grad) -> (Tensor, Tensor)");
  // 2x spatial upsampling of an NCHW tensor; mode is "nearest" or "bilinear"
  // (bilinear with align_corners=False).
  m.def("upsample2x(Tensor x, str mode) -> Tensor");
  // Adjoint of upsample2x: maps a (N, C, 2H, 2W) gradient to (N, C, H, W).
  m.def("upsample2x_backward(Tensor grad_y, str mode) -> Tensor");
  // upsample2x(bias_leaky_relu(x, bias, ...)) in one pass, channel dim 1.
  // Returns (y, act): act is the low-resolution activation, kept for the
  // backward pass.
  m.def("upsample2x_bias_leaky_relu(Tensor x, Tensor? bias, float negative_slope, float gain, str mode) -> (Tensor, Tensor)");
  // Its backward from the saved activation: (grad_x, grad_bias) as in
  // bias_leaky_relu_backward, with the upsampling adjoint fused in.
  m.def("upsample2x_bias_leaky_relu_backward(Tensor grad_y, Tensor act, float negative_slope, float gain, str mode, bool bias_grad) -> (Tensor, Tensor)");
}

#ifdef CONDGAN_PYTHON_MODULE
// Lets setup.py's build be imported as `condgan._C`; importing it runs the
// static registrations above.
#include <Python.h>
extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}
#endif
