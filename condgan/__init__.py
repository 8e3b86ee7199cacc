"""condgan: conditional GANs (class-conditional, pix2pix, CycleGAN) on one training core."""
__version__ = "0.1.0"
