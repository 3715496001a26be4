"""A pretrained backbone with a new classifier head, and the views of it that each
fine-tuning phase trains. Every view shares the same layers, so training one trains all."""

from __future__ import annotations

import dataclasses

import keras

from imgcls_cli.models.backbones import preprocess_input
from imgcls_cli.models.cnn import classifier_head


@dataclasses.dataclass
class TransferModel:
    backbone: keras.Model  # keras.applications, include_top=False
    features: keras.Model  # 0-255 images → preprocessing → backbone → pooled features
    classifier: keras.Model  # pooled features → dropout → softmax
    model: keras.Model  # images → classifier(features(images)): what is saved and served
    training_model: keras.Model  # the same weights; the backbone in inference mode (see below)


class InferenceModeBackbone(keras.Model):
    """The transfer model for training: the head sees `training`, the backbone never does.

    In a Keras 3 functional graph, calling the outer model with training=True overrides
    the training=False given to a nested model (keras-team/keras#20285), which would put
    unfrozen BatchNormalization layers into training mode and let them overwrite their
    ImageNet statistics with those of small batches. An explicit training=False inside
    `call` does stick. Never saved: the functional `model` is.

    `learn_statistics` (a backbone with random weights, --weights none): there are no
    statistics to keep, and a deep network whose batch normalization divides by its
    initial variance of 1 passes no signal (it trained at chance). Its unfrozen
    BatchNormalization layers then train as in a CNN from scratch, normalizing each batch
    by its own moments, and their statistics are measured on the training images before
    every validation (engine/batch_norm.py).
    """

    def __init__(
        self,
        features: keras.Model,
        classifier: keras.Model,
        learn_statistics: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.feature_extractor = features
        self.head = classifier
        self.learn_statistics = learn_statistics

    def call(self, images, training=None):
        backbone_training = training if self.learn_statistics else False
        features = self.feature_extractor(images, training=backbone_training)
        return self.head(features, training=training)

    @property
    def inference_mode_layers(self) -> tuple[keras.Model, ...]:
        """Sub-models that training never updates the batch statistics of (engine/batch_norm.py)."""
        return () if self.learn_statistics else (self.feature_extractor,)


def build_transfer_model(
    backbone_name: str,
    backbone: keras.Model,
    num_classes: int,
    dropout: float,
    learn_statistics: bool = False,
) -> TransferModel:
    """Wrap a backbone (built for 0-255 RGB input) with its own preprocess_input, global
    average pooling and a dropout + softmax head.

    preprocess_input is applied to the symbolic input, so it is recorded in the graph as
    built-in Keras operations: the saved model needs no custom layer and loads with
    safe_mode=True anywhere, and predict/evaluate can never use the wrong preprocessing.
    """
    size = backbone.input_shape[1]
    images = keras.Input((size, size, 3), name="image")
    x = preprocess_input(backbone_name)(images)
    x = backbone(x, training=False)
    pooled = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    features = keras.Model(images, pooled, name="features")

    pooled_input = keras.Input((pooled.shape[-1],), name="pooled_features")
    classifier = keras.Model(
        pooled_input, classifier_head(pooled_input, num_classes, dropout), name="classifier"
    )

    served_input = keras.Input((size, size, 3), name="image")
    model = keras.Model(
        served_input, classifier(features(served_input)), name=f"{backbone_name}_finetuned"
    )
    training_model = InferenceModeBackbone(
        features, classifier, learn_statistics, name="training_view"
    )
    return TransferModel(backbone, features, classifier, model, training_model)


def unfreeze_top_layers(backbone: keras.Model, count: int | None) -> int:
    """Make the top `count` backbone layers trainable (None: all of them) and freeze the
    rest; returns how many are unfrozen."""
    layers = backbone.layers
    count = len(layers) if count is None else min(count, len(layers))
    backbone.trainable = True
    for index, layer in enumerate(layers):
        layer.trainable = index >= len(layers) - count
    return count
