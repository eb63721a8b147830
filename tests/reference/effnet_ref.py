#!/usr/bin/python3
"""PyTorch reference EfficientNet B0-B7, following the seed blog's code.

Module attribute names match the seed exactly so state_dict keys line up
(stem.0.weight, blocks.block_{i}.expand_conv.weight, ..., classifier.1.bias).
Deliberate deviation from the seed: block dropout is
dropout * block_idx / total_blocks with total_blocks = this model's actual
(depth-rounded) block count, not the B0 base count of 16.

    /usr/bin/python3 tests/reference/effnet_ref.py --counts
"""
import json
import math
import sys

import torch
import torch.nn as nn

# (width, depth, resolution, dropout) -- seed's efficient_config table
CONFIGS = {
    'efficientnet-b0': (1.0, 1.0, 224, 0.2),
    'efficientnet-b1': (1.0, 1.1, 240, 0.2),
    'efficientnet-b2': (1.1, 1.2, 260, 0.3),
    'efficientnet-b3': (1.2, 1.4, 300, 0.3),
    'efficientnet-b4': (1.4, 1.8, 380, 0.4),
    'efficientnet-b5': (1.6, 2.2, 456, 0.4),
    'efficientnet-b6': (1.8, 2.6, 528, 0.5),
    'efficientnet-b7': (2.0, 3.1, 600, 0.5),
}

# expand_ratio, channels, repeats, stride, kernel_size (B0 base stages)
STAGES = [
    [1, 16, 1, 1, 3],
    [6, 24, 2, 2, 3],
    [6, 40, 2, 2, 5],
    [6, 80, 3, 2, 3],
    [6, 112, 3, 1, 5],
    [6, 192, 4, 2, 5],
    [6, 320, 1, 1, 3],
]

# Expected values for num_classes=10: (params, convs, blocks)
EXPECTED = {
    'efficientnet-b0': (7144458, 81, 16),
    'efficientnet-b1': (12051034, 115, 23),
    'efficientnet-b2': (14265114, 115, 23),
    'efficientnet-b3': (19984322, 130, 26),
    'efficientnet-b4': (33117346, 160, 32),
    'efficientnet-b5': (54070074, 194, 39),
    'efficientnet-b6': (78099114, 224, 45),
    'efficientnet-b7': (123220970, 273, 55),
}


def round_filters(filters, width):
    filters *= width
    new = max(8, int(filters + 4) // 8 * 8)
    if new < 0.9 * filters:  # never shrink by more than 10%
        new += 8
    return int(new)


def round_repeats(repeats, depth):
    return int(math.ceil(depth * repeats))


class Swish(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


class SEModule(nn.Module):
    def __init__(self, channels, se_ratio):
        super().__init__()
        # squeeze width is relative to the *expanded* channels, as in the seed
        hidden = int(channels * se_ratio)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        s = self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))
        return x * s


class MBConvBlock(nn.Module):
    def __init__(self, in_ch, out_ch, kernel_size, stride, expand_ratio,
                 se_ratio, drop_rate):
        super().__init__()
        self.expand_ratio = expand_ratio
        self.stride = stride
        self.in_channels = in_ch
        self.out_channels = out_ch
        self.swish = Swish()
        mid = int(in_ch * expand_ratio)
        self.expanded_channels = mid
        if expand_ratio > 1:
            self.expand_conv = nn.Conv2d(in_ch, mid, 1, bias=False)
            self.expand_bn = nn.BatchNorm2d(mid)
        self.depthwise_conv = nn.Conv2d(mid, mid, kernel_size, stride=stride,
                                        padding=kernel_size // 2, groups=mid,
                                        bias=False)
        self.depthwise_bn = nn.BatchNorm2d(mid)
        self.se = SEModule(mid, se_ratio)
        self.project_conv = nn.Conv2d(mid, out_ch, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(out_ch)
        # plain element dropout on the block output (not stochastic depth)
        self.dropout = nn.Dropout(drop_rate)

    def forward(self, x):
        out = x
        if self.expand_ratio > 1:
            out = self.swish(self.expand_bn(self.expand_conv(out)))
        out = self.swish(self.depthwise_bn(self.depthwise_conv(out)))
        out = self.se(out)
        out = self.dropout(self.project_bn(self.project_conv(out)))
        if self.in_channels == self.out_channels and self.stride == 1:
            out = out + x
        return out


class EfficientNet(nn.Module):
    def __init__(self, width=1.0, depth=1.0, dropout=0.2, num_classes=10):
        super().__init__()
        self.num_classes = num_classes
        stem_ch = round_filters(32, width)
        self.stem = nn.Sequential(
            nn.Conv2d(3, stem_ch, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(stem_ch),
            Swish(),
        )
        # deviation from the seed: use this model's rounded block count
        total_blocks = sum(round_repeats(s[2], depth) for s in STAGES)
        self.blocks = nn.Sequential()
        in_ch, idx = stem_ch, 0
        for expand, ch, repeats, stride, k in STAGES:
            out_ch = round_filters(ch, width)
            for i in range(round_repeats(repeats, depth)):
                self.blocks.add_module(f'block_{idx}', MBConvBlock(
                    in_ch, out_ch, k, stride if i == 0 else 1, expand, 0.25,
                    dropout * idx / total_blocks))
                in_ch = out_ch
                idx += 1
        head_ch = round_filters(1280, width)
        self.head = nn.Sequential(
            nn.Conv2d(in_ch, head_ch, 1, bias=False),
            nn.BatchNorm2d(head_ch),
            Swish(),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout),
                                        nn.Linear(head_ch, num_classes))

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        x = self.avgpool(x).flatten(1)
        return self.classifier(x)


def build(model_name, num_classes=10, dropout=None):
    """dropout=None: the model's own rate; 0.0 disables every dropout."""
    width, depth, _res, own = CONFIGS[model_name]
    return EfficientNet(width, depth, own if dropout is None else dropout,
                        num_classes)


def counts(model):
    return {
        'params': sum(p.numel() for p in model.parameters()),
        'convs': sum(isinstance(m, nn.Conv2d) for m in model.modules()),
        'blocks': len(model.blocks),
    }


def main(argv):
    if argv[1:] != ['--counts']:
        print(__doc__.strip())
        return 2
    bad = 0
    for name, expected in EXPECTED.items():
        c = counts(build(name))
        print(json.dumps({'model': name, **c}), flush=True)
        got = (c['params'], c['convs'], c['blocks'])
        if got != expected:
            print(f'MISMATCH {name}: got {got}, expected {expected}',
                  file=sys.stderr)
            bad += 1
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
