"""The model contract: MobileNet V1/V2 builders, preprocessing, and the model bundle format."""
