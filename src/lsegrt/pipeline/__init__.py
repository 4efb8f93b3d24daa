"""Dataset-scale feature extraction: sources → decode → batch → encode → reduce → write.

``lsegrt.extract(inputs, out, **options)`` runs it (:mod:`.run`), ``lsegrt.open_features(out)`` reads
the dataset back (:mod:`.read`); the stages are the modules of this package, one each: :mod:`.sources`
(frame references, ids, sharding), :mod:`.video`, :mod:`.decode` (worker processes), :mod:`.batch`,
:mod:`.encode` (host→device + encoder), :mod:`.reduce` (pooling, PCA, labels on the device),
:mod:`.pca`, :mod:`.transfer` (device→host), :mod:`.write` (writer threads), :mod:`.store` (folder
layout, manifests, resume), :mod:`.progress`.
"""
