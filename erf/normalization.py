"""The ImageNet per-channel mean and standard deviation (RGB, pixels in [0, 1]) that
torchvision's and timm's ImageNet weights expect: layer 0, one definition for the probe's
photo inputs, the model zoo's default normalisation and the training data."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
