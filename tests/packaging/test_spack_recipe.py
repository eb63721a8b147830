#!/usr/bin/python3
"""Static check of packaging/spack/effnet-hpc/package.py (Spack is not
installable here): it parses as Python, defines one CMakePackage with the
variants the issue names, and its depends_on() list matches the packages
CMakeLists.txt finds, so the two cannot drift apart.

    test_spack_recipe.py SOURCE_DIR
"""
import ast
import re
import sys

# CMake find_package / find_library name -> Spack package (None: provided by
# the compiler or the system, no Spack dependency)
CMAKE_TO_SPACK = {
    "BLAS": "blas", "OpenMP": None, "HDF5": "hdf5", "MPI": "mpi", "Threads": None,
    "OpenSSL": "openssl", "CUDAToolkit": "cuda", "CUDNN": "cudnn", "NCCL": "nccl",
    "iniparser": "iniparser", "cJSON": "cjson", "dnnl": "onednn",
    "JPEG": "libjpeg-turbo", "PNG": "libpng", "libexif": "libexif",
}
CUDA_ONLY = {"cuda", "cudnn", "nccl"}


def cmake_deps(src):
    text = open(f"{src}/CMakeLists.txt").read()
    names = set(re.findall(r"find_package\((\w+)", text))
    names |= {"iniparser"} if re.search(r"find_library\(INIPARSER_LIBRARY", text) else set()
    names |= {"dnnl"} if re.search(r"find_library\(DNNL_LIBRARY", text) else set()
    names |= {"libexif"} if re.search(r"find_library\(LIBEXIF_LIBRARY", text) else set()
    unknown = names - CMAKE_TO_SPACK.keys()
    if unknown:
        sys.exit(f"FAIL: CMakeLists.txt finds {sorted(unknown)}: add them to package.py and to CMAKE_TO_SPACK here")
    return {CMAKE_TO_SPACK[n] for n in names} - {None}


def recipe(src):
    path = f"{src}/packaging/spack/effnet-hpc/package.py"
    tree = ast.parse(open(path).read(), path)
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    if len(classes) != 1 or [b.id for b in classes[0].bases] != ["CMakePackage", "CudaPackage"]:
        sys.exit("FAIL: package.py must define one class EffnetHpc(CMakePackage, CudaPackage)")
    deps, cuda_deps, variants = set(), set(), set()

    def visit(node, under_cuda):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.With):
                ctx = child.items[0].context_expr
                is_cuda = (isinstance(ctx, ast.Call) and getattr(ctx.func, "id", "") == "when"
                           and [getattr(a, "value", None) for a in ctx.args] == ["+cuda"])
                visit(child, under_cuda or is_cuda)
                continue
            if isinstance(child, ast.Call) and isinstance(child.func, ast.Name):
                arg = child.args[0].value if child.args and isinstance(child.args[0], ast.Constant) else None
                kinds = [getattr(k.value, "value", None) for k in child.keywords if k.arg == "type"]
                if child.func.id == "depends_on" and arg and kinds != ["build"]:
                    name = re.match(r"[\w-]+", arg).group(0)
                    (cuda_deps if under_cuda else deps).add(name)
                elif child.func.id == "variant" and arg:
                    variants.add(arg)
            visit(child, under_cuda)

    visit(classes[0], False)
    return deps, cuda_deps, variants


def main():
    src = sys.argv[1]
    want = cmake_deps(src)
    deps, cuda_deps, variants = recipe(src)
    print(f"CMakeLists.txt needs: {sorted(want)}")
    print(f"package.py depends on: {sorted(deps)}, with +cuda: {sorted(cuda_deps)}; variants: {sorted(variants)}")
    bad = []
    if deps != want - CUDA_ONLY:
        bad.append(f"link/run dependencies {sorted(deps)} != CMake's {sorted(want - CUDA_ONLY)}")
    if cuda_deps != want & CUDA_ONLY:
        bad.append(f"+cuda dependencies {sorted(cuda_deps)} != CMake's {sorted(want & CUDA_ONLY)}")
    if bad:
        sys.exit("FAIL: " + "; ".join(bad))
    print("PASS: the Spack recipe's dependencies match CMakeLists.txt (cuda and cuda_arch come from CudaPackage)")


if __name__ == "__main__":
    main()
