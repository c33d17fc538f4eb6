"""Wrong solutions and shortcuts of every coding exercise, as a learner could write them.

WRONG[name]: each breaks one stated rule (the grader must name a difference); SHORTCUT[name]:
each reaches the step through the kit, a library or too much memory (the grader must refuse it).
Kept apart from the tests so that the notebook test and the unit test share one list."""

WRONG = {
    "hooked_shapes": [
        # keys in network order, not in the order of `layers`
        "def hooked_shapes(net, layers, x):\n"
        "    mods = dict(net.named_modules()); shapes, hs = {}, []\n"
        "    for l in sorted(layers, key=list(mods).index):\n"
        "        hs.append(mods[l].register_forward_hook("
        "lambda m, i, o, l=l: shapes.__setitem__(l, tuple(o.shape))))\n"
        "    try:\n        net(x)\n    finally:\n        [h.remove() for h in hs]\n"
        "    return {l: shapes[l] for l in sorted(layers, key=list(mods).index)}\n",
        # one forward pass per layer
        "def hooked_shapes(net, layers, x):\n"
        "    mods, shapes = dict(net.named_modules()), {}\n"
        "    for l in layers:\n"
        "        h = mods[l].register_forward_hook("
        "lambda m, i, o, l=l: shapes.__setitem__(l, tuple(o.shape)))\n"
        "        try:\n            net(x)\n        finally:\n            h.remove()\n"
        "    return shapes\n",
        # hooks stay when the forward pass fails (no try/finally)
        "def hooked_shapes(net, layers, x):\n"
        "    mods = dict(net.named_modules()); shapes, hs = {}, []\n"
        "    for l in layers:\n"
        "        hs.append(mods[l].register_forward_hook("
        "lambda m, i, o, l=l: shapes.__setitem__(l, tuple(o.shape))))\n"
        "    net(x)\n    [h.remove() for h in hs]\n    return {l: shapes[l] for l in layers}\n",
    ],
    "features_until": [
        # the last of `layers` taken as the deepest
        "class Stop(Exception):\n    pass\n"
        "def features_until(net, layers, x):\n"
        "    mods = dict(net.named_modules()); out, hs = {}, []\n"
        "    def hook(m, i, o, l):\n"
        "        out[l] = o\n        if l == layers[-1]:\n            raise Stop\n"
        "    for l in layers:\n"
        "        hs.append(mods[l].register_forward_hook(lambda m, i, o, l=l: hook(m, i, o, l)))\n"
        "    try:\n        net(x)\n    except Stop:\n        pass\n"
        "    finally:\n        [h.remove() for h in hs]\n    return [out[l] for l in layers]\n",
        # the whole network runs
        "def features_until(net, layers, x):\n"
        "    mods = dict(net.named_modules()); out, hs = {}, []\n"
        "    for l in layers:\n"
        "        hs.append(mods[l].register_forward_hook("
        "lambda m, i, o, l=l: out.__setitem__(l, o)))\n"
        "    try:\n        net(x)\n    finally:\n        [h.remove() for h in hs]\n"
        "    return [out[l] for l in layers]\n",
    ],
    "aggregate3x3": [
        # changes its input in place
        "def aggregate3x3(feat):\n"
        "    b, c, h, w = feat.shape\n"
        "    p = F.pad(feat, (1, 1, 1, 1))\n"
        "    feat[:] = sum(p[:, :, i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9\n"
        "    return feat\n",
        # padding not counted: divide by the number of cells inside the grid
        "def aggregate3x3(feat):\n"
        "    b, c, h, w = feat.shape\n"
        "    p = F.pad(feat, (1, 1, 1, 1)); n = F.pad(torch.ones(1, 1, h, w), (1, 1, 1, 1))\n"
        "    s = sum(p[:, :, i:i + h, j:j + w] for i in range(3) for j in range(3))\n"
        "    cnt = sum(n[:, :, i:i + h, j:j + w] for i in range(3) for j in range(3))\n"
        "    return s / cnt\n",
        # border cells repeated instead of zeros
        "def aggregate3x3(feat):\n"
        "    b, c, h, w = feat.shape\n"
        "    p = F.pad(feat, (1, 1, 1, 1), mode='replicate')\n"
        "    return sum(p[:, :, i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9\n",
    ],
    "fuse_finest": [
        # the first map's grid, not the finest
        "def fuse_finest(feats):\n"
        "    size = feats[0].shape[-2:]\n"
        "    return torch.cat([F.interpolate(f, size=tuple(size), mode='bilinear',"
        " align_corners=False) for f in feats], 1)\n",
        # align_corners=True
        "def fuse_finest(feats):\n"
        "    size = max((f.shape[-2:] for f in feats), key=lambda s: s[0] * s[1])\n"
        "    return torch.cat([F.interpolate(f, size=tuple(size), mode='bilinear',"
        " align_corners=True) for f in feats], 1)\n",
    ],
    "greedy_kcenter": [
        # ties: the highest index wins
        "def greedy_kcenter(x, m, start):\n"
        "    mind, i, out = np.full(len(x), np.inf), start, []\n"
        "    for _ in range(m):\n"
        "        out.append(i); mind = np.minimum(mind, ((x - x[i]) ** 2).sum(1))\n"
        "        i = len(x) - 1 - int(np.argmax(mind[::-1]))\n"
        "    return np.array(out)\n",
        # the start index ignored
        "def greedy_kcenter(x, m, start):\n"
        "    mind, i, out = np.full(len(x), np.inf), 0, []\n"
        "    for _ in range(m):\n"
        "        out.append(i); mind = np.minimum(mind, ((x - x[i]) ** 2).sum(1))\n"
        "        i = int(np.argmax(mind))\n"
        "    return np.array(out)\n",
    ],
    "coverage_radius": [
        # the mean distance, not the largest
        "def coverage_radius(x, kept):\n"
        "    mind = np.full(len(x), np.inf)\n"
        "    for j in kept:\n        mind = np.minimum(mind, ((x - x[j]) ** 2).sum(1))\n"
        "    return float(np.sqrt(mind).mean())\n",
        # squared distance
        "def coverage_radius(x, kept):\n"
        "    mind = np.full(len(x), np.inf)\n"
        "    for j in kept:\n        mind = np.minimum(mind, ((x - x[j]) ** 2).sum(1))\n"
        "    return float(mind.max())\n",
    ],
    "nearest_distances": [
        # squared distances
        "def nearest_distances(queries, bank, k):\n"
        "    d, i = [], []\n"
        "    for s in range(0, len(queries), 128):\n"
        "        q = queries[s:s + 128]; d2 = ((q[:, None] - bank[None]) ** 2).sum(-1)\n"
        "        o = np.argsort(d2, 1, kind='stable')[:, :k].copy()\n"
        "        d.append(np.take_along_axis(d2, o, 1)); i.append(o)\n"
        "    return np.concatenate(d), np.concatenate(i)\n",
        # ties: the higher index first
        "def nearest_distances(queries, bank, k):\n"
        "    d, i, m = [], [], len(bank)\n"
        "    for s in range(0, len(queries), 128):\n"
        "        q = queries[s:s + 128]\n"
        "        d2 = ((q[:, None] - bank[None][:, ::-1]) ** 2).sum(-1)\n"
        "        o = np.argsort(d2, 1, kind='stable')[:, :k].copy()\n"
        "        d.append(np.sqrt(np.take_along_axis(d2, o, 1))); i.append(m - 1 - o)\n"
        "    return np.concatenate(d), np.concatenate(i)\n",
    ],
    "image_score_and_map": [
        # the nearest neighbour only, not the mean of k
        "def image_score_and_map(feats, bank, k, size):\n"
        "    h, w, d = feats.shape\n"
        "    dist, _ = knn.knn(feats.reshape(-1, d), bank, k)\n"
        "    patch = dist[:, 0].reshape(h, w)\n"
        "    return float(patch.max()), maps.anomaly_map(patch[None], (size, size))[0]\n",
        # upsampled without the blur
        "def image_score_and_map(feats, bank, k, size):\n"
        "    h, w, d = feats.shape\n"
        "    dist, _ = knn.knn(feats.reshape(-1, d), bank, k)\n"
        "    patch = dist.mean(1).reshape(h, w)\n"
        "    up = F.interpolate(patch[None, None], size=(size, size), mode='bilinear',"
        " align_corners=False)\n"
        "    return float(patch.max()), up[0, 0]\n",
    ],
    "roc_auc": [
        # ordinal ranks: a tie does not count one half
        "def roc_auc(labels, scores):\n"
        "    labels = np.asarray(labels) > 0.5\n"
        "    p, n = labels.sum(), (~labels).sum()\n"
        "    if p == 0 or n == 0:\n        return None\n"
        "    r = np.empty(len(scores)); r[np.argsort(scores, kind='stable')] = np.arange(1,"
        " len(scores) + 1)\n"
        "    return float((r[labels].sum() - p * (p + 1) / 2) / (p * n))\n",
        # one class present: 0.5 instead of None
        "def roc_auc(labels, scores):\n"
        "    labels = np.asarray(labels) > 0.5\n"
        "    p, n = labels.sum(), (~labels).sum()\n"
        "    if p == 0 or n == 0:\n        return 0.5\n"
        "    o = np.argsort(scores, kind='stable'); s = scores[o]\n"
        "    st = np.flatnonzero(np.r_[True, s[1:] != s[:-1]]); en = np.r_[st[1:], len(s)]\n"
        "    r = np.empty(len(s)); r[o] = np.repeat((st + en + 1) / 2, en - st)\n"
        "    return float((r[labels].sum() - p * (p + 1) / 2) / (p * n))\n",
    ],
    "f1_optimal_threshold": [
        # on equal F1 the lowest threshold
        "def f1_optimal_threshold(labels, scores):\n"
        "    labels = np.asarray(labels) > 0.5\n"
        "    if not labels.any():\n        return None\n"
        "    best = None\n"
        "    for t in np.unique(scores):\n"
        "        f = scores >= t; tp = (f & labels).sum(); fp = (f & ~labels).sum()\n"
        "        fn = (~f & labels).sum(); f1 = 2 * tp / (2 * tp + fp + fn)\n"
        "        if best is None or f1 > best[1]:\n            best = (float(t), float(f1))\n"
        "    return best\n",
        # flags score > threshold
        "def f1_optimal_threshold(labels, scores):\n"
        "    labels = np.asarray(labels) > 0.5\n"
        "    if not labels.any():\n        return None\n"
        "    best = None\n"
        "    for t in np.unique(scores)[::-1]:\n"
        "        f = scores > t; tp = (f & labels).sum(); fp = (f & ~labels).sum()\n"
        "        fn = (~f & labels).sum(); f1 = 2 * tp / (2 * tp + fp + fn)\n"
        "        if best is None or f1 > best[1]:\n            best = (float(t), float(f1))\n"
        "    return best\n",
    ],
}

# (source, a word the refusal must contain)
SHORTCUT = {
    "hooked_shapes": [
        ("def hooked_shapes(net, layers, x):\n"
         "    with backbone.FeatureExtractor(net, layers, hooks=True) as e:\n"
         "        fs = e(x)\n"
         "    return {l: tuple(f.shape) for l, f in zip(layers, fs)}\n", "FeatureExtractor"),
        ("from torchvision.models.feature_extraction import create_feature_extractor\n"
         "def hooked_shapes(net, layers, x):\n"
         "    out = create_feature_extractor(net, list(layers))(x)\n"
         "    return {l: tuple(out[l].shape) for l in layers}\n", "create_feature_extractor"),
    ],
    "features_until": [
        ("def features_until(net, layers, x):\n"
         "    out = backbone.truncate(net, layers)(x)\n"
         "    return [out[l] for l in layers]\n", "truncate"),
        ("def features_until(net, layers, x):\n"
         "    g = getattr(backbone, 'trun' + 'cate')(net, layers)\n"
         "    return [g(x)[l] for l in layers]\n", "backbone"),
    ],
    "aggregate3x3": [
        ("def aggregate3x3(feat):\n    return F.avg_pool2d(feat, 3, 1, 1)\n", "avg_pool2d"),
        ("pool = torch.nn.functional.avg_pool2d\n"
         "def aggregate3x3(feat):\n    return pool(feat, 3, stride=1, padding=1)\n",
         "avg_pool2d"),
        ("def aggregate3x3(feat):\n"
         "    c = feat.shape[1]\n"
         "    return F.conv2d(feat, torch.ones(c, 1, 3, 3) / 9, padding=1, groups=c)\n",
         "conv2d"),
        ("def aggregate3x3(feat):\n    return torch._C._nn.avg_pool2d(feat, 3, 1, 1)\n",
         "torch._C"),
        ("def aggregate3x3(feat):\n    return feat._foo\n", "private"),
        ("def aggregate3x3(feat):\n    return embedding.aggregate(feat)\n", "aggregate"),
        ("import functools\npool = functools.partial(F.avg_pool2d, kernel_size=3, stride=1,"
         " padding=1)\ndef aggregate3x3(feat):\n    return pool(feat)\n", "avg_pool2d"),
    ],
    "fuse_finest": [
        ("def fuse_finest(feats):\n    return embedding.fuse(feats)\n", "fuse"),
        ("from patchcore_lite.embedding import embed\n"
         "def fuse_finest(feats):\n    return embed(feats, local=False).permute(0, 3, 1, 2)\n",
         "embed"),
    ],
    "greedy_kcenter": [
        ("def greedy_kcenter(x, m, start):\n"
         "    return sampling.greedy_exact(torch.from_numpy(x), m, start, lambda _: None)\n",
         "sampling"),
        ("def greedy_kcenter(x, m, start):\n"
         "    t = torch.from_numpy(x); sq = (t * t).sum(1)\n"
         "    d2 = sq[:, None] + sq[None] - 2 * t @ t.T\n"
         "    mind, i, out = torch.full((len(t),), float('inf'), dtype=t.dtype), start, []\n"
         "    for _ in range(m):\n"
         "        out.append(i); mind = torch.minimum(mind, d2[i]); i = int(mind.argmax())\n"
         "    return out\n", "MiB"),
        ("from scipy.spatial.distance import cdist\n"
         "def greedy_kcenter(x, m, start):\n"
         "    mind, i, out = np.full(len(x), np.inf), start, []\n"
         "    for _ in range(m):\n"
         "        out.append(i); mind = np.minimum(mind, cdist(x, x[i:i + 1])[:, 0] ** 2)\n"
         "        i = int(np.argmax(mind))\n"
         "    return out\n", "scipy"),
    ],
    "coverage_radius": [
        ("def coverage_radius(x, kept):\n"
         "    return sampling.coverage(torch.from_numpy(x), torch.from_numpy(kept))\n",
         "sampling"),
        ("def coverage_radius(x, kept):\n"
         "    t = torch.from_numpy(x); c = t[torch.from_numpy(kept)]\n"
         "    d2 = (t * t).sum(1)[:, None] + (c * c).sum(1)[None] - 2 * t @ c.T\n"
         "    return float(d2.clamp_min(0).min(1).values.max().sqrt())\n", "MiB"),
    ],
    "nearest_distances": [
        ("def nearest_distances(queries, bank, k):\n"
         "    d, i = knn.knn(torch.from_numpy(queries), torch.from_numpy(bank), k)\n"
         "    return d.numpy(), i.numpy()\n", "knn"),
        ("def nearest_distances(queries, bank, k):\n"
         "    q, b = torch.from_numpy(queries), torch.from_numpy(bank)\n"
         "    d2 = (q * q).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * q @ b.T\n"
         "    d, i = torch.sort(d2, dim=1, stable=True)\n"
         "    return d[:, :k].sqrt().numpy(), i[:, :k].numpy()\n", "MiB"),
        ("from sklearn.neighbors import NearestNeighbors\n"
         "def nearest_distances(queries, bank, k):\n"
         "    return NearestNeighbors(n_neighbors=k).fit(bank).kneighbors(queries)\n",
         "sklearn"),
    ],
    "image_score_and_map": [
        ("from patchcore_lite import PatchCore\n"
         "def image_score_and_map(feats, bank, k, size):\n"
         "    m = PatchCore(weights=None, resize=size, crop=0, progress=False)\n"
         "    s, a, _ = m.score_features(feats[None], bank=bank, k=k)\n"
         "    return float(s[0]), a[0]\n", "PatchCore"),
        ("def image_score_and_map(feats, bank, k, size):\n"
         "    from patchcore_lite.teaching import lesson04\n"
         "    return lesson04.ExplainLab(None, []).anomaly_map(0, k)\n", "teaching"),
    ],
    "roc_auc": [
        ("from sklearn.metrics import roc_auc_score\n"
         "def roc_auc(labels, scores):\n    return float(roc_auc_score(labels, scores))\n",
         "sklearn"),
        ("def roc_auc(labels, scores):\n"
         "    import scipy.stats\n"
         "    labels = np.asarray(labels) > 0.5; p, n = labels.sum(), (~labels).sum()\n"
         "    if p == 0 or n == 0:\n        return None\n"
         "    r = scipy.stats.rankdata(scores)\n"
         "    return float((r[labels].sum() - p * (p + 1) / 2) / (p * n))\n", "scipy"),
        ("def roc_auc(labels, scores):\n"
         "    labels = np.asarray(labels) > 0.5\n"
         "    if labels.all() or not labels.any():\n        return None\n"
         "    p = torch.from_numpy(scores[labels])[:, None]\n"
         "    n = torch.from_numpy(scores[~labels])[None]\n"
         "    return float(((p > n).double().sum() + 0.5 * (p == n).double().sum())"
         " / (p.numel() * n.numel()))\n",
         "MiB"),
    ],
    "f1_optimal_threshold": [
        ("def f1_optimal_threshold(labels, scores):\n"
         "    return metrics.f1_threshold(labels, scores)\n", "metrics"),
        ("from sklearn.metrics import precision_recall_curve\n"
         "def f1_optimal_threshold(labels, scores):\n"
         "    p, r, t = precision_recall_curve(labels, scores)\n"
         "    f = 2 * p * r / (p + r + 1e-12)\n"
         "    return float(t[f[:-1].argmax()]), float(f.max())\n", "sklearn"),
    ],
}

# Correct solutions written differently from the instructor's (other libraries' public calls,
# local names that shadow the kit's, helpers in another cell): every one must pass.
RIGHT = {
    "hooked_shapes": "def grab(store, name):\n"
                     "    return lambda m, i, o: store.__setitem__(name, tuple(o.shape))\n"
                     "def hooked_shapes(net, layers, x):\n"
                     "    shapes, handles = {}, []\n"
                     "    try:\n"
                     "        for name in layers:\n"
                     "            handles.append(net.get_submodule(name)"
                     ".register_forward_hook(grab(shapes, name)))\n"
                     "        net(x)\n"
                     "    finally:\n"
                     "        for h in handles:\n            h.remove()\n"
                     "    return {name: shapes[name] for name in layers}\n",
    "aggregate3x3": "def aggregate3x3(feat):\n"
                    "    h, w = feat.shape[-2:]\n"
                    "    padded = torch.zeros(*feat.shape[:2], h + 2, w + 2)\n"
                    "    padded[:, :, 1:-1, 1:-1] = feat\n"
                    "    aggregate = torch.zeros_like(feat)\n"
                    "    for dy in range(3):\n"
                    "        for dx in range(3):\n"
                    "            aggregate += padded[:, :, dy:dy + h, dx:dx + w]\n"
                    "    return aggregate / 9\n",
    "greedy_kcenter": "def greedy_kcenter(x, m, start):\n"
                      "    t = torch.from_numpy(x)\n"
                      "    best = torch.full((len(t),), float('inf'), dtype=t.dtype)\n"
                      "    picked = [start]\n"
                      "    while len(picked) < m:\n"
                      "        best = torch.minimum(best, torch.linalg.norm(t - t[picked[-1]],"
                      " dim=1))\n"
                      "        picked.append(int(torch.argmax(best)))\n"
                      "    return picked\n",
    "nearest_distances": "def nearest_distances(queries, bank, k):\n"
                         "    knn, idx = [], []\n"
                         "    b = torch.from_numpy(bank)\n"
                         "    for s in range(0, len(queries), 200):\n"
                         "        q = torch.from_numpy(queries[s:s + 200])\n"
                         "        d = (q * q).sum(1)[:, None] + (b * b).sum(1) - 2 * q @ b.T\n"
                         "        v, i = torch.sort(d, dim=1, stable=True)\n"
                         "        knn.append(v[:, :k].clamp_min(0).sqrt())\n"
                         "        idx.append(i[:, :k].clone())\n"
                         "    return torch.cat(knn).numpy(), torch.cat(idx).numpy()\n",
    "roc_auc": "def roc_auc(labels, scores):\n"
               "    y = np.asarray(labels).astype(bool)\n"
               "    if y.all() or not y.any():\n        return None\n"
               "    values, rank = np.unique(scores, return_inverse=True)\n"
               "    pos = np.bincount(rank[y], minlength=len(values))\n"
               "    neg = np.bincount(rank[~y], minlength=len(values))\n"
               "    below = np.cumsum(neg) - neg\n"
               "    auc = (pos * (below + 0.5 * neg)).sum() / (y.sum() * (~y).sum())\n"
               "    return float(auc)\n",
}
