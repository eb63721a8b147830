# Spack recipe for effnet-hpc. Put this directory in a Spack repo
# (spack repo create myrepo; cp -r packaging/spack/effnet-hpc myrepo/packages/)
# and: spack install effnet-hpc            (CPU backend)
#      spack install effnet-hpc +cuda cuda_arch=90
# tests/packaging/test_spack_recipe.py keeps its dependencies in step with
# CMakeLists.txt's find_package calls.
from spack.package import *


class EffnetHpc(CMakePackage, CudaPackage):
    """EfficientNet B0-B7 training for CIFAR-10 in C for HPC clusters: MPI data
    parallelism, HDF5 data and checkpoints, a BLAS/OpenMP CPU backend and an
    optional CUDA backend (cuDNN, NCCL)."""

    # No public repository yet: point git at your clone (spack edit effnet-hpc).
    homepage = "https://example.org/effnet-hpc"
    git = "https://example.org/effnet-hpc.git"

    version("main", branch="main")
    version("0.1.0", tag="v0.1.0")

    variant("native", default=False, description="Compile for the build machine's CPU (-march=native)")
    variant("gemm", default="onednn", values=("blas", "onednn"), multi=False,
            description="CPU GEMM provider for the convolutions: the BLAS, or oneDNN's dnnl_sgemm")

    depends_on("c", type="build")
    depends_on("cmake@3.25:", type="build")
    depends_on("mpi")
    depends_on("hdf5~mpi")
    depends_on("blas")
    depends_on("iniparser")
    depends_on("cjson@1.7.15:")
    depends_on("openssl")
    # data_tools/images-to-h5: JPEG and PNG decoding, EXIF orientation. libjpeg-turbo
    # rather than the "jpeg" virtual: its pixels are the ones PIL gives (docs/data-format.md);
    # libpng 1.6.31 added the eXIf chunk.
    depends_on("libjpeg-turbo")
    depends_on("libpng@1.6.31:")
    depends_on("libexif")
    depends_on("onednn", when="gemm=onednn")
    with when("+cuda"):
        depends_on("cuda@12:")
        depends_on("cudnn@9:")
        depends_on("nccl@2.18:")

    def cmake_args(self):
        args = [
            self.define("EFFNET_CUDA", "ON" if self.spec.satisfies("+cuda") else "OFF"),
            self.define_from_variant("EFFNET_NATIVE", "native"),
            self.define("BLA_VENDOR", self.blas_vendor()),
            self.define_from_variant("EFFNET_GEMM", "gemm"),
        ]
        if self.spec.satisfies("+cuda"):
            archs = self.spec.variants["cuda_arch"].value
            if archs and archs[0] != "none":
                args.append(self.define("CMAKE_CUDA_ARCHITECTURES", ";".join(archs)))
        return args

    def blas_vendor(self):
        # CMake's FindBLAS vendor name for the provider Spack chose
        name = self.spec["blas"].name
        return {"openblas": "OpenBLAS", "amdblis": "FLAME", "blis": "FLAME",
                "intel-oneapi-mkl": "Intel10_64lp", "netlib-lapack": "Generic"}.get(name, "All")
