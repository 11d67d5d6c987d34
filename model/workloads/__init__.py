"""What the method is measured on: data sets, the trained zoo, MobileNetV2 with its ImageNet
weights, the photos it is measured on, and the cache that keeps them between runs."""
