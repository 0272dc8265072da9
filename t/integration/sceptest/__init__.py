"""Test support for mod_scep's integration suite.

httpd.py   a generated server root and a running Apache with the built module
client.py  an independent SCEP (RFC 8894) client: pkiMessages, CertRep parsing
pki.py     keys, CSRs, self-signed signer certificates, certificate checks
"""
