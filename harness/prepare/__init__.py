"""The prepare stage: dataset sources (synthetic, ILSVRC, ImageFolder, CIFAR-10), safe archive
extraction, and the resumable sharded writer of the prepared-data layout."""
