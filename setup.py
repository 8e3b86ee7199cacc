"""Packaging for condgan.

Runtime dependencies live here (install_requires); `pip install -e ".[dev]"`
adds the test tools. The compiled extension `condgan._C` (csrc/) is built here
only when torch is importable at build time; see condgan/ops for the
just-in-time build used otherwise.
"""
import re
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (ROOT / "condgan" / "__init__.py").read_text()).group(1)


def extensions():
    """Return (ext_modules, cmdclass) for condgan._C; empty when torch is absent."""
    # torch is not a build requirement (see pyproject.toml): without it at
    # build time, condgan.ops compiles the extension just in time instead.
    try:
        import torch  # noqa: F401
        from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension
    except ImportError:
        return [], {}
    import importlib.util
    import os

    # Sources and flags are shared with the just-in-time build.
    spec = importlib.util.spec_from_file_location("_condgan_build_flags", ROOT / "condgan" / "ops" / "_build_flags.py")
    flags = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(flags)

    with_cuda = bool(os.environ.get("CUDA_HOME")) or os.environ.get("FORCE_CUDA") == "1"
    csrc = ROOT / "csrc"
    sources = [str(p.relative_to(ROOT)) for p in flags.sources(csrc, with_cuda)]
    cxx = flags.cpu_flags(flags.cpu_capability())
    kwargs = dict(
        name="condgan._C",
        sources=sources,
        define_macros=[("CONDGAN_PYTHON_MODULE", None)],
        extra_compile_args={"cxx": cxx, "nvcc": flags.cuda_flags()} if with_cuda else {"cxx": cxx},
        extra_link_args=flags.link_flags(),
    )
    extension = CUDAExtension(**kwargs) if with_cuda else CppExtension(**kwargs)
    return [extension], {"build_ext": BuildExtension}


ext_modules, cmdclass = extensions()

setup(
    name="condgan",
    version=VERSION,
    description="Conditional GANs: class-conditional generation, pix2pix and CycleGAN on one training core",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8") if (ROOT / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["condgan", "condgan.*"]),
    package_data={"condgan": ["data/assets/*"]},
    include_package_data=True,
    install_requires=[
        "torch>=2.4",  # fused Adam on CPU
        "torchvision>=0.19",
        "numpy>=1.24",
        "pillow>=9.0",
        "tqdm>=4.64",
        "tensorboard>=2.14",
        "torchmetrics>=1.3",
        "torch-fidelity>=0.3",  # the FID Inception-v3 that torchmetrics' FID/KID run on (condgan.metrics.inception)
        "ninja>=1.11",
        "albumentations>=2.0",  # paired augmentation: one random draw applied to A and B alike
        "onnx>=1.16",  # condgan.export: the model file, its metadata and checker
        "onnxscript>=0.2",  # torch.onnx's exporter needs it
        "onnxruntime>=1.18",  # condgan.export checks every exported model against PyTorch
    ],
    extras_require={
        "dev": ["pytest>=7.4", "pytest-timeout>=2.2"],
    },
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    entry_points={
        "console_scripts": [
            "condgan-train=condgan.train:main",
            "condgan-sample=condgan.sample:main",
            "condgan-export=condgan.export:main",
            "condgan-bench=condgan.bench:main",
            "condgan-evaluate=condgan.evaluate:main",
            "condgan-translate=condgan.translate:main",
        ]
    },
)
